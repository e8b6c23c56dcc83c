
-- exact distances on real[] and the ivfpq index ----------------------------------
-- (docs/ivfpq-format.md).  Operators spelled as in pgvector: <-> Euclidean,
-- <#> negative inner product, <=> cosine distance.  No core or contrib operator
-- uses these names for real[].

CREATE FUNCTION l2_distance(a real[], b real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_array_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(a real[], b real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_array_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION negative_inner_product(a real[], b real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_array_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cosine_distance(a real[], b real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_array_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION l2_distance(real[], real[]) IS 'Euclidean distance between two vectors of one dimension';
COMMENT ON FUNCTION inner_product(real[], real[]) IS 'inner product of two vectors of one dimension';
COMMENT ON FUNCTION negative_inner_product(real[], real[]) IS 'minus the inner product (smaller is more similar)';
COMMENT ON FUNCTION cosine_distance(real[], real[]) IS '1 - cosine similarity; NaN when either vector is zero';

CREATE OPERATOR <-> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <#> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = negative_inner_product, COMMUTATOR = '<#>');
CREATE OPERATOR <=> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = cosine_distance, COMMUTATOR = '<=>');
COMMENT ON OPERATOR <->(real[], real[]) IS 'Euclidean distance';
COMMENT ON OPERATOR <#>(real[], real[]) IS 'negative inner product';
COMMENT ON OPERATOR <=>(real[], real[]) IS 'cosine distance';

CREATE FUNCTION ivfpqhandler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C PARALLEL SAFE;
COMMENT ON FUNCTION ivfpqhandler(internal) IS 'index access method handler of ivfpq';
CREATE ACCESS METHOD ivfpq TYPE INDEX HANDLER ivfpqhandler;
COMMENT ON ACCESS METHOD ivfpq IS
	'IVF-PQ approximate nearest-neighbour index over real[]: coarse lists, product-quantized residuals, exact re-ranking';

CREATE OPERATOR CLASS real_l2_ops DEFAULT FOR TYPE real[] USING ivfpq AS
	OPERATOR 1 <-> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(real[], real[]);
CREATE OPERATOR CLASS real_ip_ops FOR TYPE real[] USING ivfpq AS
	OPERATOR 1 <#> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 negative_inner_product(real[], real[]);
CREATE OPERATOR CLASS real_cosine_ops FOR TYPE real[] USING ivfpq AS
	OPERATOR 1 <=> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(real[], real[]);
COMMENT ON OPERATOR CLASS real_l2_ops USING ivfpq IS 'ivfpq by Euclidean distance (<->), the default';
COMMENT ON OPERATOR CLASS real_ip_ops USING ivfpq IS 'ivfpq by inner product (<#>)';
COMMENT ON OPERATOR CLASS real_cosine_ops USING ivfpq IS 'ivfpq by cosine distance (<=>); zero vectors are not indexed';
COMMENT ON OPERATOR FAMILY real_l2_ops USING ivfpq IS 'ivfpq by Euclidean distance';
COMMENT ON OPERATOR FAMILY real_ip_ops USING ivfpq IS 'ivfpq by inner product';
COMMENT ON OPERATOR FAMILY real_cosine_ops USING ivfpq IS 'ivfpq by cosine distance';
