-- bulkhead pgstore schema, version 9: a group's completions that end
-- their runs write the ends in the group's call.
--
-- A completion that ended its run was a statement of its own beside the
-- group's call of bulkhead_complete_tasks: bulkhead_complete_task and an
-- UPDATE of the run, planned again on every call (sessions plan for
-- their values). With 16 ten-node runs in flight that statement cost the
-- server about a quarter of a millisecond of running and a sixth of a
-- millisecond of planning per run, a sixth of all its time on
-- completions.
--
-- This bulkhead_complete_tasks takes, beside version 5's arguments, the
-- ends: end k is written by completion e_comp[k] (each completion at most
-- once) over the run's version e_rev[k] created at e_created[k], with
-- status e_status[k], finished_ns e_finished[k] (NULL while unfinished)
-- and body e_bodies[k], as UpdateRun writes it: only when that completion
-- is stored and the run is still at that version. Its rows carry
-- r_ended, whether the completion's end was written. Version 5's
-- function stays for hosts not yet upgraded.

CREATE FUNCTION bulkhead_complete_tasks(
	c_runs bytea[], c_nodes bytea[], c_owners bytea[], c_tokens bigint[], c_bodies bytea[],
	c_keep boolean[], c_lease bigint[],
	d_comp int[], d_nodes bytea[], d_blocks int[],
	n_dep int[], n_nodes bytea[], p_now bigint,
	e_comp int[], e_rev bigint[], e_created bigint[], e_status text[], e_finished bigint[], e_bodies bytea[])
RETURNS TABLE (r_code int, r_node bytea, r_token bigint, r_first int, r_lease timestamptz, r_ended boolean)
LANGUAGE plpgsql AS $$
DECLARE
	n int := coalesce(array_length(c_runs, 1), 0);
	fenced int[];
	stored int[];
	ended int[] := '{}';
BEGIN
	PERFORM 1 FROM runs WHERE id = ANY (c_runs) ORDER BY id FOR NO KEY UPDATE;

	WITH c AS (
		SELECT * FROM unnest(c_runs, c_nodes, c_owners, c_tokens) WITH ORDINALITY AS c (run_id, node, owner, token, i)
	), l AS (
		SELECT t.run_id, t.node, c.i FROM tasks t
		JOIN c ON t.run_id = c.run_id AND t.node = c.node AND t.owner = c.owner AND t.token = c.token
		WHERE t.lease_until > clock_timestamp()
		ORDER BY t.run_id, t.node FOR UPDATE OF t
	), d AS (
		DELETE FROM tasks t USING l WHERE t.run_id = l.run_id AND t.node = l.node
		RETURNING l.i
	)
	SELECT coalesce(array_agg(d.i::int), '{}') INTO fenced FROM d;

	IF cardinality(fenced) > 0 THEN
		WITH ins AS (
			INSERT INTO node_results (run_id, node, body)
			SELECT c_runs[i], c_nodes[i], c_bodies[i] FROM unnest(fenced) AS i
			ORDER BY 1, 2
			ON CONFLICT DO NOTHING
			RETURNING run_id, node
		)
		SELECT coalesce(array_agg(i), '{}') INTO stored
		FROM ins JOIN unnest(fenced) AS i ON c_runs[i] = ins.run_id AND c_nodes[i] = ins.node;
	ELSE
		stored := '{}';
	END IF;

	IF cardinality(e_comp) > 0 AND cardinality(stored) > 0 THEN
		WITH u AS (
			UPDATE runs r SET status = e_status[k], finished_ns = e_finished[k], body = e_bodies[k], rev = r.rev + 1
			FROM generate_subscripts(e_comp, 1) AS k
			WHERE e_comp[k] = ANY (stored) AND r.id = c_runs[e_comp[k]]
				AND r.rev = e_rev[k] AND r.created_ns = e_created[k]
			RETURNING e_comp[k] AS i
		)
		SELECT coalesce(array_agg(i), '{}') INTO ended FROM u;
	END IF;

	RETURN QUERY
	WITH d AS (
		SELECT j, d_comp[j] AS ci, c_runs[d_comp[j]] AS run_id, d_nodes[j] AS node, d_blocks[j] AS block
		FROM generate_subscripts(d_nodes, 1) AS j
		WHERE d_comp[j] = ANY (stored)
	), unmet AS MATERIALIZED (
		SELECT DISTINCT n_dep[k] AS j FROM generate_subscripts(n_dep, 1) AS k
		WHERE NOT EXISTS (SELECT 1 FROM node_results r
			WHERE r.run_id = c_runs[d_comp[n_dep[k]]] AND r.node = n_nodes[k])
	), ready AS (
		SELECT DISTINCT ON (d.run_id, d.node) d.* FROM d
		WHERE NOT EXISTS (SELECT 1 FROM node_results r WHERE r.run_id = d.run_id AND r.node = d.node)
			AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = d.run_id AND t.node = d.node)
			AND NOT EXISTS (SELECT 1 FROM unmet WHERE unmet.j = d.j)
		ORDER BY d.run_id, d.node, d.j
	), att AS (
		INSERT INTO node_attempts AS a (run_id, node, attempt, started_ns)
		SELECT run_id, node, block, p_now FROM ready ORDER BY run_id, node
		ON CONFLICT (run_id, node) DO UPDATE
			SET attempt = a.attempt + EXCLUDED.attempt, started_ns = EXCLUDED.started_ns
		RETURNING a.run_id, a.node, a.attempt
	), q AS (
		SELECT ready.ci, ready.run_id, ready.node, att.attempt - ready.block + 1 AS first,
			c_keep[ready.ci] AND row_number() OVER (PARTITION BY ready.ci ORDER BY ready.j) = 1 AS keep
		FROM ready JOIN att ON att.run_id = ready.run_id AND att.node = ready.node
	), ins AS (
		INSERT INTO tasks (run_id, node, first_attempt, owner, token, claims, lease_until)
		SELECT run_id, node, first,
			CASE WHEN keep THEN c_owners[ci] END,
			CASE WHEN keep THEN nextval('task_tokens') ELSE 0 END,
			CASE WHEN keep THEN 1 ELSE 0 END,
			CASE WHEN keep THEN now() + c_lease[ci] * interval '1 microsecond' END
		FROM q ORDER BY ci, run_id, node
		RETURNING run_id, node, token, lease_until
	)
	SELECT CASE WHEN i = ANY (stored) THEN 0 WHEN i = ANY (fenced) THEN 1 ELSE 4 END,
		k.node, k.token, k.first, k.lease_until, i = ANY (ended)
	FROM generate_series(1, n) AS i
	LEFT JOIN (
		SELECT q.ci, q.node, ins.token, q.first::int AS first, ins.lease_until
		FROM q JOIN ins ON ins.run_id = q.run_id AND ins.node = q.node
		WHERE q.keep
	) k ON k.ci = i
	ORDER BY i;
END
$$;

ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint, int[], bigint[], bigint[], text[], bigint[], bytea[])
	SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint, int[], bigint[], bigint[], text[], bigint[], bytea[])
	SET enable_seqscan = off;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint, int[], bigint[], bigint[], text[], bigint[], bytea[])
	SET enable_hashjoin = off;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint, int[], bigint[], bigint[], text[], bigint[], bytea[])
	SET enable_mergejoin = off;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint, int[], bigint[], bigint[], text[], bigint[], bytea[])
	SET jit = off;
