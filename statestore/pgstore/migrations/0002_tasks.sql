-- bulkhead pgstore schema, version 2: the ready queue.
--
-- A task is a ready node of an unfinished run: queued (owner NULL,
-- claimable from ready_at) or claimed by owner until lease_until. Both
-- times are the database server's clock, so hosts whose clocks disagree
-- agree on who holds a claim. token identifies a claim: every claim takes
-- the next value of task_tokens, so a claim's (owner, token) is never
-- repeated by a later one. seq orders tasks oldest first.

CREATE SEQUENCE task_tokens AS bigint;

CREATE TABLE tasks (
	run_id        bytea       NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	node          bytea       NOT NULL,
	seq           bigint      GENERATED ALWAYS AS IDENTITY,
	ready_at      timestamptz NOT NULL DEFAULT now(),
	owner         bytea,
	token         bigint      NOT NULL DEFAULT 0,
	claims        int         NOT NULL DEFAULT 0,
	first_attempt int         NOT NULL,
	lease_until   timestamptz,
	PRIMARY KEY (run_id, node),
	CHECK ((owner IS NULL) = (lease_until IS NULL))
);
-- A claim reads queued tasks in seq order, and claimed tasks whose lease
-- ended through their lease.
CREATE INDEX tasks_queued ON tasks (seq) INCLUDE (ready_at) WHERE owner IS NULL;
CREATE INDEX tasks_leased ON tasks (lease_until) WHERE owner IS NOT NULL;

-- UnqueuedRuns pages unfinished runs by id.
CREATE INDEX runs_unfinished_id ON runs (id) WHERE status IN ('pending', 'running');

-- bulkhead_queue_nodes queues the nodes of run p_run that are ready: every
-- need journaled, not journaled themselves, no task yet. Node i needs
-- p_needs[o+1 .. o+p_nneeds[i]], o the sum of the counts before it. For
-- each node queued it raises the node's attempt to last+block (started at
-- p_now) and inserts its task with first_attempt last+1; it returns the
-- nodes queued in the order given. With p_owner, the first node queued is
-- inserted claimed by p_owner (a new token, claims 1, leased for
-- p_lease_us microseconds), and its token and lease are returned with it.
-- The caller holds the run row locked
-- FOR NO KEY UPDATE, which serializes the writes that may ready a node of
-- the run, so of two needs completing at once the second one queues it.
CREATE FUNCTION bulkhead_queue_nodes(
	p_run bytea, p_nodes bytea[], p_blocks int[], p_nneeds int[], p_needs bytea[], p_now bigint,
	p_owner bytea DEFAULT NULL, p_lease_us bigint DEFAULT 0)
RETURNS TABLE (q_node bytea, q_first int, q_token bigint, q_lease timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
	n int := coalesce(array_length(p_nodes, 1), 0);
	o int := 0;
	needs bytea[];
	att int;
	kept boolean := p_owner IS NULL;
BEGIN
	FOR i IN 1..n LOOP
		needs := p_needs[o + 1 : o + p_nneeds[i]];
		o := o + p_nneeds[i];
		IF p_nneeds[i] = 0 THEN
			needs := '{}';
		END IF;
		CONTINUE WHEN EXISTS (SELECT 1 FROM node_results r WHERE r.run_id = p_run AND r.node = p_nodes[i]);
		CONTINUE WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = p_run AND t.node = p_nodes[i]);
		CONTINUE WHEN EXISTS (SELECT 1 FROM unnest(needs) AS w(node)
			WHERE NOT EXISTS (SELECT 1 FROM node_results r WHERE r.run_id = p_run AND r.node = w.node));
		INSERT INTO node_attempts AS a (run_id, node, attempt, started_ns)
			VALUES (p_run, p_nodes[i], p_blocks[i], p_now)
			ON CONFLICT (run_id, node) DO UPDATE
				SET attempt = a.attempt + EXCLUDED.attempt, started_ns = EXCLUDED.started_ns
			RETURNING a.attempt INTO att;
		q_node := p_nodes[i];
		q_first := att - p_blocks[i] + 1;
		q_token := NULL;
		q_lease := NULL;
		IF kept THEN
			INSERT INTO tasks (run_id, node, first_attempt) VALUES (p_run, q_node, q_first);
		ELSE
			kept := true;
			INSERT INTO tasks (run_id, node, first_attempt, owner, token, claims, lease_until)
				VALUES (p_run, q_node, q_first, p_owner, nextval('task_tokens'), 1,
					now() + p_lease_us * interval '1 microsecond')
				RETURNING token, lease_until INTO q_token, q_lease;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;

-- bulkhead_complete_task journals the completion of a claimed task, all or
-- nothing, while the claim (p_owner, p_token) holds. code: 0 stored, 1 node
-- already completed (the task is removed, nothing queued), 3 no such run,
-- 4 the claim does not hold: another claim took the task, its lease
-- ended, or it was dropped (nothing written). On code 0 it queues the
-- dependents the completion makes ready (as bulkhead_queue_nodes) and,
-- with p_keep, claims the first one for p_owner, leased for p_lease_us
-- microseconds; k_node is NULL when none was queued.
CREATE FUNCTION bulkhead_complete_task(
	p_run bytea, p_node bytea, p_owner bytea, p_token bigint, p_body bytea,
	p_nodes bytea[], p_blocks int[], p_nneeds int[], p_needs bytea[], p_now bigint,
	p_keep boolean, p_lease_us bigint,
	OUT code int, OUT k_node bytea, OUT k_token bigint, OUT k_first int, OUT k_lease timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
	code := 0;
	PERFORM 1 FROM runs WHERE id = p_run FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		code := 3;
		RETURN;
	END IF;
	DELETE FROM tasks WHERE run_id = p_run AND node = p_node AND owner = p_owner AND token = p_token
		AND lease_until > clock_timestamp();
	IF NOT FOUND THEN
		code := 4;
		RETURN;
	END IF;
	INSERT INTO node_results (run_id, node, body) VALUES (p_run, p_node, p_body)
		ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		code := 1;
		RETURN;
	END IF;
	SELECT q_node, q_token, q_first, q_lease INTO k_node, k_token, k_first, k_lease
		FROM bulkhead_queue_nodes(p_run, p_nodes, p_blocks, p_nneeds, p_needs, p_now,
			CASE WHEN p_keep THEN p_owner END, p_lease_us)
		WHERE q_token IS NOT NULL;
END
$$;

-- bulkhead_submit_run creates a run and queues its roots (as
-- bulkhead_queue_nodes); it returns false, queueing nothing, when the run
-- exists already.
CREATE FUNCTION bulkhead_submit_run(
	p_id bytea, p_status text, p_created bigint, p_finished bigint, p_body bytea,
	p_nodes bytea[], p_blocks int[], p_nneeds int[], p_needs bytea[], p_now bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO runs (id, status, created_ns, finished_ns, body)
		VALUES (p_id, p_status, p_created, p_finished, p_body)
		ON CONFLICT (id) DO NOTHING;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM 1 FROM bulkhead_queue_nodes(p_id, p_nodes, p_blocks, p_nneeds, p_needs, p_now);
	RETURN true;
END
$$;

-- bulkhead_enqueue_nodes queues the ready nodes of an unfinished run (as
-- bulkhead_queue_nodes) under the run's lock. It returns false when there
-- is no such run.
CREATE FUNCTION bulkhead_enqueue_nodes(
	p_run bytea, p_nodes bytea[], p_blocks int[], p_nneeds int[], p_needs bytea[], p_now bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	st text;
BEGIN
	SELECT status INTO st FROM runs WHERE id = p_run FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	IF st IN ('pending', 'running') THEN
		PERFORM 1 FROM bulkhead_queue_nodes(p_run, p_nodes, p_blocks, p_nneeds, p_needs, p_now);
	END IF;
	RETURN true;
END
$$;
