-- bulkhead pgstore schema, version 7: a group's completion finds every
-- row through its primary key.
--
-- bulkhead_complete_tasks keeps one plan per session, made for no values
-- in particular. Made while the tables were new and small, that plan read
-- the whole of tasks and node_results on every call (a hash join over a
-- sequential scan), so a group's completion cost more with every node
-- ever journaled: 6 ms for a group of 10 after 20,000 completions,
-- against 1.2 ms now. The readiness check also hashed all of
-- node_results once a dependent had needs outside the group. Each need is
-- now looked up by key (unmet), and the function plans without
-- sequential scans, hash or merge joins, or JIT compilation (which a plan
-- priced without sequential scans would otherwise trigger, at 30 ms a
-- call): whatever the tables' size or statistics, a call reads the rows
-- of its group and no others.

CREATE OR REPLACE FUNCTION bulkhead_complete_tasks(
	c_runs bytea[], c_nodes bytea[], c_owners bytea[], c_tokens bigint[], c_bodies bytea[],
	c_keep boolean[], c_lease bigint[],
	d_comp int[], d_nodes bytea[], d_blocks int[],
	n_dep int[], n_nodes bytea[], p_now bigint)
RETURNS TABLE (r_code int, r_node bytea, r_token bigint, r_first int, r_lease timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
	n int := coalesce(array_length(c_runs, 1), 0);
	fenced int[];
	stored int[];
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
		k.node, k.token, k.first, k.lease_until
	FROM generate_series(1, n) AS i
	LEFT JOIN (
		SELECT q.ci, q.node, ins.token, q.first::int AS first, ins.lease_until
		FROM q JOIN ins ON ins.run_id = q.run_id AND ins.node = q.node
		WHERE q.keep
	) k ON k.ci = i
	ORDER BY i;
END
$$;

ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint)
	SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint)
	SET enable_seqscan = off;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint)
	SET enable_hashjoin = off;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint)
	SET enable_mergejoin = off;
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint)
	SET jit = off;
