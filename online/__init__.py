"""Online learning: durable event ingestion, span rolling, the online learner, guard and rollback.

Modules (TensorFlow is imported only by the ones that need it):

* `events`, `log_format`, `event_log`: the event schema and the durable exactly-once log;
* `log_repair`: `recsys events check` / `repair` of a damaged log;
* `http_handler`: ``POST /v1/events`` for the model server's REST front end;
* `profiles`, `span_roller`: rolling the log into new ExampleGen spans;
* `base_data`, `networks`, `online_tables`, `optimizer`, `guard`, `serving_module`,
  `checkpoint`, `learner`: the long-running online learner;
* `rollback`, `artifacts`, `warm_start`, `cli`, `config`, `files`: operations and wiring.
"""
