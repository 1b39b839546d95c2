-- bulkhead pgstore schema, version 5: a group's completions in one call.
--
-- bulkhead_complete_task runs about eight statements for one completion;
-- a group of n completions ran 8n. bulkhead_complete_tasks journals the
-- whole group in five statements, each over every member at once.

-- bulkhead_complete_tasks journals completions 1..n of claimed tasks, each
-- all or nothing and each independent of the others, as n calls of
-- bulkhead_complete_task in order would. Completion i is of node
-- c_nodes[i] of run c_runs[i] under the claim (c_owners[i], c_tokens[i]),
-- with result c_bodies[i]; c_keep[i] claims the first dependent it queues
-- for c_owners[i], leased for c_lease[i] microseconds. Dependent j is
-- node d_nodes[j] of completion d_comp[j] (ascending in j, the
-- completion's dependents in their order), attempt block d_blocks[j];
-- need k is node n_nodes[k] of dependent n_dep[k]. A need that is the
-- completing node itself may be left out: it is journaled when the
-- completion is.
--
-- It returns one row per completion, in order: code 0 stored, 1 node
-- already completed (the task is removed, nothing queued), 4 the claim
-- does not hold or the run is gone (nothing written); on code 0 with a
-- dependent kept, its node, token, first attempt and lease.
--
-- Each statement sees the ones before it: the runs are locked first
-- (FOR NO KEY UPDATE, in key order), which serializes the writes that may
-- ready a node of a run, so of two needs completing at once the second
-- one queues it, as in bulkhead_complete_task. Tasks are locked in key
-- order before they are removed, as ExtendLeases locks them.
CREATE FUNCTION bulkhead_complete_tasks(
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
	), need AS (
		SELECT n_dep[k] AS j, n_nodes[k] AS node FROM generate_subscripts(n_dep, 1) AS k
	), ready AS (
		SELECT DISTINCT ON (d.run_id, d.node) d.* FROM d
		WHERE NOT EXISTS (SELECT 1 FROM node_results r WHERE r.run_id = d.run_id AND r.node = d.node)
			AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = d.run_id AND t.node = d.node)
			AND NOT EXISTS (SELECT 1 FROM need WHERE need.j = d.j
				AND NOT EXISTS (SELECT 1 FROM node_results r WHERE r.run_id = d.run_id AND r.node = need.node))
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

-- Its statements find their rows through primary keys, whatever the
-- values (see version 4).
ALTER FUNCTION bulkhead_complete_tasks(bytea[], bytea[], bytea[], bigint[], bytea[], boolean[], bigint[], int[], bytea[], int[], int[], bytea[], bigint)
	SET plan_cache_mode = auto;

-- bulkhead_submit_run_claim is bulkhead_submit_run that also claims the
-- first root it queues for p_owner, leased for p_lease_us microseconds:
-- created is false when the run exists (nothing is queued); k_node is
-- NULL when no root was claimed.
CREATE FUNCTION bulkhead_submit_run_claim(
	p_id bytea, p_status text, p_created bigint, p_finished bigint, p_body bytea,
	p_nodes bytea[], p_blocks int[], p_nneeds int[], p_needs bytea[], p_now bigint,
	p_owner bytea, p_lease_us bigint,
	OUT created boolean, OUT k_node bytea, OUT k_token bigint, OUT k_first int, OUT k_lease timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO runs (id, status, created_ns, finished_ns, body)
		VALUES (p_id, p_status, p_created, p_finished, p_body)
		ON CONFLICT (id) DO NOTHING;
	created := FOUND;
	IF NOT created THEN
		RETURN;
	END IF;
	SELECT q_node, q_token, q_first, q_lease INTO k_node, k_token, k_first, k_lease
		FROM bulkhead_queue_nodes(p_id, p_nodes, p_blocks, p_nneeds, p_needs, p_now, p_owner, p_lease_us)
		WHERE q_token IS NOT NULL;
END
$$;
ALTER FUNCTION bulkhead_submit_run_claim(bytea, text, bigint, bigint, bytea, bytea[], int[], int[], bytea[], bigint, bytea, bigint)
	SET plan_cache_mode = auto;
