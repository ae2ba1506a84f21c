// Package chat holds the words every layer of roomcast shares: rooms and
// their ids, messages and the ids that order them, history queries and
// pages, resets, posts, presence records and rate decisions, and the errors
// that cross layers. It imports nothing of the project and no Redis client,
// so api, broker and redisscripts can all speak it.
package chat
