-- bulkhead pgstore schema, version 4: the write functions keep their
-- statements' plans.
--
-- Sessions plan every statement for its values (plan_cache_mode =
-- force_custom_plan), which listings need, and PL/pgSQL statements obey
-- it too: a completion re-planned each of its statements on every call,
-- about two thirds of its time on the server. Every statement of these
-- functions finds its rows through a primary key, whatever the values,
-- so they use the default, which caches a plan after five calls.
ALTER FUNCTION bulkhead_complete_node(bytea, bytea, bytea, bytea[], int[], bigint[])
	SET plan_cache_mode = auto;
ALTER FUNCTION bulkhead_queue_nodes(bytea, bytea[], int[], int[], bytea[], bigint, bytea, bigint)
	SET plan_cache_mode = auto;
ALTER FUNCTION bulkhead_complete_task(bytea, bytea, bytea, bigint, bytea, bytea[], int[], int[], bytea[], bigint, boolean, bigint)
	SET plan_cache_mode = auto;
ALTER FUNCTION bulkhead_submit_run(bytea, text, bigint, bigint, bytea, bytea[], int[], int[], bytea[], bigint)
	SET plan_cache_mode = auto;
ALTER FUNCTION bulkhead_enqueue_nodes(bytea, bytea[], int[], int[], bytea[], bigint)
	SET plan_cache_mode = auto;
