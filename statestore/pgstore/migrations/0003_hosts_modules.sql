-- bulkhead pgstore schema, version 3: membership of the hosts sharing the
-- database, and the plugin modules they share.
--
-- Times are Unix nanoseconds on the database's clock (clock_timestamp), so
-- hosts with skewed clocks agree on who is live.

CREATE TABLE hosts (
	id           bytea  PRIMARY KEY,
	address      text   NOT NULL,
	version      text   NOT NULL,
	heartbeat_ns bigint NOT NULL,
	started_ns   bigint NOT NULL,
	last_seen_ns bigint NOT NULL,
	plugins      jsonb  NOT NULL DEFAULT '[]'
);

-- Module bytes, once per SHA-256 (hex), whatever plugin uses them.
CREATE TABLE modules (
	sha256     text   PRIMARY KEY,
	wasm       bytea  NOT NULL,
	created_ns bigint NOT NULL
);

-- The manifest each plugin runs a module version with.
CREATE TABLE plugin_modules (
	plugin     bytea  NOT NULL,
	sha256     text   NOT NULL REFERENCES modules (sha256),
	manifest   bytea  NOT NULL,
	updated_ns bigint NOT NULL,
	PRIMARY KEY (plugin, sha256)
);

-- bulkhead_now_ns is the database clock in Unix nanoseconds.
CREATE FUNCTION bulkhead_now_ns() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
	SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint * 1000
$$;
