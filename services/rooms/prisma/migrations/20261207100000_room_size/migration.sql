-- A room's size kept on its row: sb_join added one and sb_remove took removed ones away
-- (the only places sessions are inserted and deleted, both holding the room's row lock), where
-- both counted the room's sessions under the lock on every call — a join into a room of n
-- members, and each leave from it, read n rows. A user's own sessions in the room are counted
-- through an index on (room_id, user_id).
-- AlterTable
ALTER TABLE "rooms" ADD COLUMN "size" INTEGER NOT NULL DEFAULT 0;

-- CreateIndex
CREATE INDEX "sessions_room_id_user_id_idx" ON "sessions"("room_id", "user_id");

UPDATE rooms r SET size = (SELECT count(*) FROM sessions s WHERE s.room_id = r.id);

CREATE OR REPLACE FUNCTION sb_join(
  p_room_id text, p_socket_id text, p_user_id text, p_platform text,
  p_device_name text, p_network_type text, p_version text, p_app_version text,
  p_orientation integer, p_camera text, p_ip text, p_gateway_id text,
  p_gateway_started_at bigint, p_connection_id text, p_resume_hash text,
  p_token_expires_at timestamp(3), p_grants jsonb, p_hidden boolean,
  p_name text, p_metadata text, p_join_event jsonb,
  p_default_capacity integer, p_max_per_user integer, p_page integer)
RETURNS TABLE (room_size integer, room_seq bigint, sessions jsonb, sessions_next text)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp(3) := now() AT TIME ZONE 'UTC';
  v_capacity integer;
  v_inserted boolean;
  v_size integer;
  v_mine integer;
  v_seq bigint;
BEGIN
  -- The room's size counts this session already (a refused join rolls it back).
  INSERT INTO rooms AS r (id, size) VALUES (p_room_id, 1)
  ON CONFLICT (id) DO UPDATE SET empty_since = NULL, size = r.size + 1
  RETURNING coalesce(r.capacity, p_default_capacity), (r.xmax = 0), r.size - 1
  INTO v_capacity, v_inserted, v_size;
  -- Counted after the lock: no concurrent join can have added a session of the user since.
  SELECT count(*) INTO v_mine FROM sessions s
  WHERE s.room_id = p_room_id AND s.user_id = p_user_id;
  IF v_size >= v_capacity THEN
    RAISE EXCEPTION 'room is full' USING ERRCODE = 'SBFUL', DETAIL = v_capacity::text;
  END IF;
  IF v_mine >= p_max_per_user THEN
    RAISE EXCEPTION 'too many sessions' USING ERRCODE = 'SBMAX', DETAIL = p_max_per_user::text;
  END IF;
  INSERT INTO sessions (socket_id, room_id, user_id, platform, device_name, network_type,
    version, app_version, orientation, camera, ip, gateway_id, gateway_started_at,
    connection_id, state, joined_at, attached_at, last_seen, resume_hash, token_expires_at,
    grants, hidden, name, metadata)
  VALUES (p_socket_id, p_room_id, p_user_id, p_platform, p_device_name, p_network_type,
    p_version, p_app_version, p_orientation, p_camera, p_ip, p_gateway_id,
    p_gateway_started_at, p_connection_id, 'ACTIVE', v_now, v_now, v_now, p_resume_hash,
    p_token_expires_at, p_grants, p_hidden, p_name, p_metadata);
  IF v_inserted THEN
    PERFORM sb_record_event(p_room_id, 'room.created', jsonb_build_object('roomId', p_room_id));
  END IF;
  PERFORM sb_record_event(p_room_id, 'room.join',
    p_join_event || jsonb_build_object('roomSize', v_size + 1));
  v_seq := CASE WHEN p_hidden THEN sb_broadcast_seq(p_room_id)
                ELSE sb_next_broadcast(p_room_id) END;
  -- Hidden members are nobody's peers. The first p_page of the others, and where the next
  -- page starts when there are more (sb_member_cursor).
  RETURN QUERY
    SELECT v_size + 1, v_seq,
           coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
             'socketId', o.socket_id, 'userId', o.user_id, 'name', o.name,
             'metadata', o.metadata)) ORDER BY o.joined_at, o.socket_id)
             FILTER (WHERE o.n <= p_page), '[]'::jsonb),
           max(o.cursor) FILTER (WHERE o.n = p_page AND o.more)
    FROM (SELECT x.socket_id, x.user_id, x.name, x.metadata, x.joined_at,
                 row_number() OVER w AS n, sb_member_cursor(x.joined_at, x.socket_id) AS cursor,
                 count(*) OVER () > p_page AS more
          FROM (SELECT * FROM sessions y
                WHERE y.room_id = p_room_id AND NOT y.hidden AND y.socket_id <> p_socket_id
                ORDER BY y.joined_at, y.socket_id LIMIT p_page + 1) x
          WINDOW w AS (ORDER BY x.joined_at, x.socket_id)) o;
END
$$;


CREATE OR REPLACE FUNCTION sb_remove(
  p_room_id text, p_socket_ids text[], p_connection_id text,
  p_window_ms double precision, p_reason text, p_skip_locked boolean,
  p_must_exist boolean)
RETURNS TABLE (socket_id text, user_id text, gateway_id text, connection_id text,
               hidden boolean, size_before integer, size_after integer, room_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp(3) := now() AT TIME ZONE 'UTC';
  v_seq bigint;
  v_visible integer;
  v_shown integer := 0;
  v_found boolean;
  v_size integer;
  v_removed integer := 0;
  v_ids text[];
  v_before timestamp(3) := v_now - make_interval(secs => coalesce(p_window_ms, 0) / 1000);
  s record;
  t record;
BEGIN
  IF p_skip_locked THEN
    PERFORM 1 FROM rooms r WHERE r.id = p_room_id FOR UPDATE SKIP LOCKED;
  ELSE
    PERFORM 1 FROM rooms r WHERE r.id = p_room_id FOR UPDATE;
  END IF;
  v_found := FOUND;
  IF NOT v_found THEN
    IF p_must_exist THEN
      RAISE EXCEPTION 'no such room' USING ERRCODE = 'SBNRM';
    END IF;
    RETURN;
  END IF;
  SELECT r.size INTO v_size FROM rooms r WHERE r.id = p_room_id;
  -- Which sessions, found by the index that fits (a leave must not scan a big room).
  IF p_socket_ids IS NULL THEN
    SELECT array_agg(x.socket_id) INTO v_ids FROM sessions x
    WHERE x.room_id = p_room_id
      AND (p_window_ms IS NULL
           OR (x.state = 'DISCONNECTED' AND x.disconnected_at < v_before));
  ELSE
    SELECT array_agg(x.socket_id) INTO v_ids FROM sessions x
    WHERE x.socket_id = ANY (p_socket_ids) AND x.room_id = p_room_id
      AND (p_connection_id IS NULL OR x.connection_id = p_connection_id)
      AND (p_window_ms IS NULL
           OR (x.state = 'DISCONNECTED' AND x.disconnected_at < v_before));
  END IF;
  -- The leaves the others see go out as broadcasts of up to 200 leaves, one number each
  -- (v_seq is the first); hidden members' rows carry v_seq too (nobody broadcasts them).
  SELECT count(*) INTO v_visible FROM sessions x
  WHERE x.socket_id = ANY (coalesce(v_ids, '{}')) AND NOT x.hidden;
  IF v_visible > 0 THEN
    v_seq := sb_next_broadcast(p_room_id, (v_visible + 199) / 200) - (v_visible + 199) / 200 + 1;
  ELSE
    v_seq := sb_broadcast_seq(p_room_id);
  END IF;
  FOR s IN
    SELECT x.socket_id, x.user_id, x.gateway_id, x.connection_id, x.hidden
    FROM sessions x WHERE x.socket_id = ANY (coalesce(v_ids, '{}'))
    ORDER BY x.joined_at, x.socket_id
  LOOP
    FOR t IN
      SELECT k.id, k.kind, k.source FROM tracks k
      WHERE k.socket_id = s.socket_id ORDER BY k.published_at, k.id
    LOOP
      PERFORM sb_record_event(p_room_id, 'track.unpublished', jsonb_build_object(
        'roomId', p_room_id, 'socketId', s.socket_id, 'userId', s.user_id,
        'trackId', t.id, 'kind', t.kind, 'source', t.source));
    END LOOP;
    DELETE FROM sessions x WHERE x.socket_id = s.socket_id;
    PERFORM sb_record_event(p_room_id, 'room.leave', jsonb_build_object(
      'roomId', p_room_id, 'roomSize', v_size - v_removed - 1, 'socketId', s.socket_id,
      'userId', s.user_id, 'reason', p_reason));
    socket_id := s.socket_id;
    user_id := s.user_id;
    gateway_id := s.gateway_id;
    connection_id := s.connection_id;
    hidden := s.hidden;
    size_before := v_size - v_removed;
    size_after := v_size - v_removed - 1;
    IF s.hidden THEN
      room_seq := v_seq;
    ELSE
      room_seq := v_seq + v_shown / 200;
      v_shown := v_shown + 1;
    END IF;
    v_removed := v_removed + 1;
    RETURN NEXT;
  END LOOP;
  IF v_removed > 0 THEN
    UPDATE rooms r SET size = r.size - v_removed WHERE r.id = p_room_id;
  END IF;
  IF v_removed = 0 AND p_reason <> 'deleted' THEN
    RETURN;
  END IF;
  IF v_size - v_removed = 0 THEN
    IF p_reason <> 'deleted' THEN
      UPDATE rooms r SET empty_since = v_now
      WHERE r.id = p_room_id AND r.empty_timeout_s IS DISTINCT FROM 0;
      IF FOUND THEN
        RETURN;
      END IF;
    END IF;
    DELETE FROM rooms r WHERE r.id = p_room_id;
    PERFORM sb_record_event(p_room_id, 'room.closed', jsonb_build_object('roomId', p_room_id));
  END IF;
END
$$;

