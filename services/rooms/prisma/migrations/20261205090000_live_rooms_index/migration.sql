-- Members in room and socketId order: the keyset of liveRooms' pages (room.live), so a page
-- that continues a big room reads only its own rows instead of the whole room, sorted.
-- CreateIndex
CREATE INDEX "sessions_room_id_socket_id_idx" ON "sessions"("room_id", "socket_id");
