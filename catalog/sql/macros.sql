-- Macros users call from `lineage sql`. They bind to views at call time.
-- Every ancestor of a model along edges of the given source ('recovered' or 'card').
CREATE OR REPLACE {temp} MACRO ancestors(model, edge_source := 'recovered') AS TABLE
    WITH RECURSIVE up(model_id, depth) AS (
        SELECT parent, 1 FROM edges WHERE child = model AND source = edge_source
        UNION
        SELECT e.parent, up.depth + 1 FROM edges e JOIN up ON e.child = up.model_id
        WHERE e.source = edge_source AND up.depth < 1000
    )
    SELECT model_id, min(depth) AS depth FROM up GROUP BY model_id ORDER BY depth, model_id;
CREATE OR REPLACE {temp} MACRO descendants(model, edge_source := 'recovered') AS TABLE
    WITH RECURSIVE down(model_id, depth) AS (
        SELECT child, 1 FROM edges WHERE parent = model AND source = edge_source
        UNION
        SELECT e.child, down.depth + 1 FROM edges e JOIN down ON e.parent = down.model_id
        WHERE e.source = edge_source AND down.depth < 1000
    )
    SELECT model_id, min(depth) AS depth FROM down GROUP BY model_id ORDER BY depth, model_id;
-- Tensors two models share byte for byte (frozen layers, re-uploads).
CREATE OR REPLACE {temp} MACRO shared_tensors(m1, m2) AS TABLE
    SELECT a.name, a.numel FROM tensors a JOIN tensors b USING (name, content_hash)
    WHERE a.model_id = m1 AND b.model_id = m2;
-- Model Graph recovery (jobs/recover.py). The newest successful recover run's id; the
-- macros below read that run's edges only, so an older run never mixes in.
CREATE OR REPLACE {temp} MACRO latest_recover_run() AS (
    SELECT run_id FROM runs WHERE job = 'recover' AND status = 'succeeded'
    ORDER BY started_at DESC LIMIT 1
);
-- `min_confidence` keeps only edges at least that probable (confidences are calibrated
-- probabilities: `lineage eval --calibration` shows how well on a zoo).
CREATE OR REPLACE {temp} MACRO recovered_edges(min_confidence := 0.0) AS TABLE
    SELECT parent, child, relation, confidence, evidence FROM edges
    WHERE source = 'recovered' AND run_id = latest_recover_run()
      AND confidence >= min_confidence;
-- The root of a model's recovered tree: its farthest ancestor, or itself if it has none.
CREATE OR REPLACE {temp} MACRO root(model) AS TABLE
    WITH RECURSIVE up(model_id, depth) AS (
        SELECT model, 0
        UNION
        SELECT e.parent, up.depth + 1 FROM recovered_edges() e JOIN up ON e.child = up.model_id
        WHERE up.depth < 1000
    )
    SELECT model_id, max(depth) AS depth FROM up
    WHERE model_id NOT IN (SELECT child FROM recovered_edges())
    GROUP BY model_id ORDER BY depth DESC, model_id;
-- Card claims the weights contradict (same rules as lineage/recovery/cards.py): kind
-- 'parent' when the claimed parent (a model in the catalog) is not a recovered parent,
-- 'relation' when it is but the relation differs (a merged LoRA counts as a fine-tune).
CREATE OR REPLACE {temp} MACRO card_disagreements() AS TABLE
    WITH rec AS (SELECT * FROM recovered_edges()),
    card AS (
        SELECT DISTINCT parent, child, relation FROM edges
        WHERE source = 'card'
          AND parent IN (SELECT model_id FROM current_models)
          AND child IN (SELECT model_id FROM current_models)
    ),
    judged AS (
        SELECT c.child, c.parent AS card_parent, c.relation AS card_relation,
               m.relation AS matched_relation
        FROM card c LEFT JOIN rec m ON m.child = c.child AND m.parent = c.parent
    )
    SELECT j.child, j.card_parent, j.card_relation,
           CASE WHEN j.matched_relation IS NULL THEN 'parent' ELSE 'relation' END AS kind,
           (SELECT list(r.parent ORDER BY r.parent) FROM rec r WHERE r.child = j.child)
               AS recovered_parents,
           (SELECT min(r.relation) FROM rec r WHERE r.child = j.child) AS recovered_relation,
           (SELECT max(r.confidence) FROM rec r WHERE r.child = j.child) AS confidence
    FROM judged j
    WHERE j.matched_relation IS NULL
       OR NOT (j.card_relation IS NULL OR j.matched_relation = j.card_relation
               OR (j.card_relation = 'finetune' AND j.matched_relation = 'lora')
               OR (j.card_relation = 'adapter' AND j.matched_relation = 'lora'))
    ORDER BY j.child, j.card_parent;
-- Recovered edges that no card or adapter config declares.
CREATE OR REPLACE {temp} MACRO undocumented_edges() AS TABLE
    SELECT r.parent, r.child, r.relation, r.confidence FROM recovered_edges() r
    WHERE NOT EXISTS (
        SELECT 1 FROM edges c WHERE c.source = 'card' AND c.parent = r.parent
          AND c.child = r.child
    )
    ORDER BY r.child, r.parent;
