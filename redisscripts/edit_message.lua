-- Edits a message: a new text, and new metadata or none or the old.
-- change_message.lua (prepended) has the KEYS, the ARGV up to 12 and the
-- reply. ARGV[13]: the new text as JSON; ARGV[14]: 'set' to replace the
-- metadata with ARGV[15] ('' for none), '' to keep it.
local text_json = ARGV[13]
local set_metadata = ARGV[14] == 'set'
local new_metadata = ARGV[15]

return change_message('edit', function(m, now)
  local metadata = m.metadata
  if set_metadata then
    metadata = new_metadata ~= '' and new_metadata or nil
  end
  return message_json(m, text_json, m.version + 1, now, false, metadata)
end)
