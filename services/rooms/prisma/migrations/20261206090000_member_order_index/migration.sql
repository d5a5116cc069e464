-- Members in the order they joined (joined_at, socket_id): the first page of joinR.sessions
-- (sb_join), the pages of listMembers (sb_members, keyset on the same pair) and the members of
-- eventRoomState read the room's first rows in index order, where they sorted the whole room
-- on every join (in a room of 10,000 a join's statement took about 12 ms, most of it the sort).
-- Hidden members are few, and filtered as the index is read.
-- CreateIndex
CREATE INDEX "sessions_room_id_joined_at_socket_id_idx" ON "sessions"("room_id", "joined_at", "socket_id");
