-- The functions that number a room's events and broadcasts, in PL/pgSQL. As SQL functions they
-- were not inlined (an INSERT … ON CONFLICT … RETURNING is not inlinable), and PostgreSQL
-- parses and plans a SQL function's body anew on every call, where PL/pgSQL keeps the plan
-- for the session: a join (sb_join calls them two or three times) took 2.2 ms inside
-- PostgreSQL, 1.3 ms with these (pgbench, one client, 2026-12-03); sb_remove calls
-- sb_record_event for every session and track it ends. Same signatures, same effects.
CREATE OR REPLACE FUNCTION sb_record_event(p_room_id text, p_type text, p_body jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_seq bigint;
  v_id uuid := gen_random_uuid();
BEGIN
  INSERT INTO room_sequences AS q (room_id, seq) VALUES (p_room_id, 1)
  ON CONFLICT (room_id) DO UPDATE SET seq = q.seq + 1
  RETURNING q.seq INTO v_seq;
  INSERT INTO room_events (id, room_id, seq, type, payload)
  VALUES (v_id, p_room_id, v_seq, p_type,
          p_body || jsonb_build_object(
            'id', v_id,
            'ts', floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint,
            'seq', v_seq));
END
$$;
CREATE OR REPLACE FUNCTION sb_next_broadcast(p_room_id text, p_count integer DEFAULT 1)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_seq bigint;
BEGIN
  INSERT INTO room_sequences AS q (room_id, broadcast_seq) VALUES (p_room_id, p_count)
  ON CONFLICT (room_id) DO UPDATE SET broadcast_seq = q.broadcast_seq + p_count
  RETURNING q.broadcast_seq INTO v_seq;
  RETURN v_seq;
END
$$;
