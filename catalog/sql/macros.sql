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
