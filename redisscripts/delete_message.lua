-- Deletes a message: its tombstone keeps id, seq, place, time, reply_to
-- and edited_at, has an empty text and no metadata, and no longer counts
-- as unread. change_message.lua (prepended) has the KEYS, ARGV and reply.
return change_message('delete', function(m, now)
  read_state_deleted(KEYS[5], tonumber(ARGV[4]))
  return message_json(m, '""', m.version + 1, m.edited_at, true, nil)
end)
