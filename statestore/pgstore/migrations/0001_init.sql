-- bulkhead pgstore schema, version 1.
--
-- Identifiers (run IDs, node names, plugin names, state keys, dead-letter
-- IDs) may hold any byte but NUL, so they are bytea: they compare byte by
-- byte, as in every other store. Times are Unix nanoseconds (bigint), so
-- values read back equal the ones written. Runs, node results and dead
-- letters keep their JSON encoding in body; the columns beside it are what
-- queries filter and order on.

CREATE TABLE runs (
	id          bytea  PRIMARY KEY,
	status      text   NOT NULL,
	created_ns  bigint NOT NULL,
	finished_ns bigint,
	rev         bigint NOT NULL DEFAULT 1,
	body        bytea  NOT NULL
);
CREATE INDEX runs_created ON runs (created_ns, id);
CREATE INDEX runs_status ON runs (status, created_ns, id);
CREATE INDEX runs_unfinished ON runs (created_ns, id) WHERE status IN ('pending', 'running');
CREATE INDEX runs_finished ON runs (finished_ns) WHERE finished_ns IS NOT NULL;

CREATE TABLE node_results (
	run_id bytea NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	node   bytea NOT NULL,
	body   bytea NOT NULL,
	PRIMARY KEY (run_id, node)
);

CREATE TABLE node_attempts (
	run_id     bytea  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	node       bytea  NOT NULL,
	attempt    int    NOT NULL,
	started_ns bigint NOT NULL,
	PRIMARY KEY (run_id, node)
);

CREATE TABLE checkpoint_heads (
	run_id bytea  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	node   bytea  NOT NULL,
	seq    bigint NOT NULL,
	PRIMARY KEY (run_id, node)
);

CREATE TABLE checkpoints (
	run_id     bytea  NOT NULL,
	node       bytea  NOT NULL,
	seq        bigint NOT NULL,
	created_ns bigint NOT NULL,
	data       bytea  NOT NULL,
	PRIMARY KEY (run_id, node, seq),
	FOREIGN KEY (run_id, node) REFERENCES checkpoint_heads (run_id, node) ON DELETE CASCADE
);

-- size is what StateUsage adds up; the primary key includes it, so
-- StateUsage is an index-only scan of the plugin's keys.
CREATE TABLE plugin_state (
	plugin bytea  NOT NULL,
	key    bytea  NOT NULL,
	value  bytea  NOT NULL,
	size   bigint NOT NULL GENERATED ALWAYS AS (length(key) + length(value)) STORED,
	PRIMARY KEY (plugin, key) INCLUDE (size)
);

CREATE TABLE dead_letters (
	id     bytea PRIMARY KEY,
	run_id bytea NOT NULL,
	body   bytea NOT NULL
);
CREATE INDEX dead_letters_run ON dead_letters (run_id, id);

-- bulkhead_complete_node journals one completion and the attempts recorded
-- with it, all or nothing. code: 0 stored, 1 node already completed,
-- 2 attempt not after the last one (last holds it, idx its position, from
-- 1), 3 no such run.
CREATE FUNCTION bulkhead_complete_node(
	p_run bytea, p_node bytea, p_body bytea,
	p_nodes bytea[], p_attempts int[], p_started bigint[],
	OUT code int, OUT idx int, OUT last int)
LANGUAGE plpgsql AS $$
DECLARE
	n int := coalesce(array_length(p_nodes, 1), 0);
BEGIN
	code := 0; idx := 0; last := 0;
	PERFORM 1 FROM runs WHERE id = p_run FOR KEY SHARE;
	IF NOT FOUND THEN
		code := 3;
		RETURN;
	END IF;
	IF n = 0 THEN
		INSERT INTO node_results (run_id, node, body) VALUES (p_run, p_node, p_body)
			ON CONFLICT DO NOTHING;
		IF NOT FOUND THEN
			code := 1;
		END IF;
		RETURN;
	END IF;
	BEGIN
		INSERT INTO node_results (run_id, node, body) VALUES (p_run, p_node, p_body)
			ON CONFLICT DO NOTHING;
		IF NOT FOUND THEN
			code := 1;
			RETURN;
		END IF;
		FOR i IN 1..n LOOP
			INSERT INTO node_attempts (run_id, node, attempt, started_ns)
				VALUES (p_run, p_nodes[i], p_attempts[i], p_started[i])
				ON CONFLICT (run_id, node) DO UPDATE
					SET attempt = EXCLUDED.attempt, started_ns = EXCLUDED.started_ns
					WHERE node_attempts.attempt < EXCLUDED.attempt;
			IF NOT FOUND THEN
				code := 2;
				idx := i;
				SELECT a.attempt INTO last FROM node_attempts a WHERE a.run_id = p_run AND a.node = p_nodes[i];
				RAISE EXCEPTION USING ERRCODE = 'BHA01';
			END IF;
		END LOOP;
	EXCEPTION WHEN SQLSTATE 'BHA01' THEN
		-- The completion and the attempts before idx are rolled back;
		-- code, idx and last keep their values.
		RETURN;
	END;
END
$$;
