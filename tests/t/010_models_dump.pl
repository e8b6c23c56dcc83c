# Models stored as rows (pgquant.models, pgquant.tensors, pgquant.tokens) are user
# data: pg_dump (plain and custom) dumps them and a restore brings them back
# identical, foreign keys satisfied, fp32 and quantized tensors bit for bit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('models');
$node->init;
$node->start;

# a llama2.c checkpoint built here: dim 8, hidden 12, 2 layers, 2 heads, 1 kv
# head, vocab 6, seq_len 4; float k is sin(k) so every tensor differs
my @cfg = (8, 12, 2, 2, 1, 6, 4);
my ($dim, $hidden, $layers, $heads, $kv, $vocab, $seq) = @cfg;
my $kv_dim = $dim / $heads * $kv;
my $nfloats = $vocab * $dim + $layers * (2 * $dim + 2 * $dim * $dim + 2 * $kv_dim * $dim
		+ 3 * $hidden * $dim) + $dim + $seq * ($dim / $heads);
my $ckpt = pack('l<7', @cfg) . pack('f<*', map { sin($_) } 0 .. $nfloats - 1);
my @pieces = ('<unk>', "\n<s>\n", "\n</s>\n", 'a', ' b', "\xc3\xa9");
my $tok = pack('l<', 6) . join('', map { pack('f< l<', -$_, length($pieces[$_])) . $pieces[$_] } 0 .. 5);

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pgquant');
is( $node->safe_psql(
		'src', sprintf(q{SELECT pgquant.import_llama2c('tiny', '\x%s', '\x%s')},
			unpack('H*', $ckpt), unpack('H*', $tok))),
	'22', 'a 2-layer checkpoint imports as 22 tensors');
# a quantized child model, and a tensor holding both data and q
$node->safe_psql('src', q{
	INSERT INTO pgquant.models (name, arch, config, parent)
	  SELECT 'tiny-q4', arch, config || '{"quantized": "rtn4"}', name FROM pgquant.models WHERE name = 'tiny';
	INSERT INTO pgquant.tensors (model, name, shape, dtype, q)
	  SELECT 'tiny-q4', name, shape, 'qtensor', quantize(data, 'rtn', 4, 4) FROM pgquant.tensors
	  WHERE model = 'tiny' AND array_ndims(data) = 2;
	INSERT INTO pgquant.tensors (model, name, shape, dtype, data)
	  SELECT 'tiny-q4', name, shape, dtype, data FROM pgquant.tensors
	  WHERE model = 'tiny' AND array_ndims(data) = 1;
	UPDATE pgquant.tensors SET q = quantize(data, 'nf4', 4, 8) WHERE model = 'tiny' AND name = 'tok_embeddings';
	-- an update moves the parent row after its child in the heap
	UPDATE pgquant.models SET description = 'fp32' WHERE name = 'tiny';
});

# one line per row of each table, values exact (shortest-exact float text, qtensor bytes)
my $fingerprint_sql = q{
	SELECT 'm', md5(string_agg(concat_ws('|', name, arch, config, parent, description), E'\n' ORDER BY name))
	  FROM pgquant.models
	UNION ALL
	SELECT 't', md5(string_agg(concat_ws('|', model, name, shape, dtype, data, encode(qtensor_send(q), 'hex')),
	                E'\n' ORDER BY model, name))
	  FROM pgquant.tensors
	UNION ALL
	SELECT 'k', md5(string_agg(concat_ws('|', model, id, piece, score), E'\n' ORDER BY model, id))
	  FROM pgquant.tokens
	UNION ALL
	SELECT 'n', (SELECT count(*) FROM pgquant.models) || '/' || (SELECT count(*) FROM pgquant.tensors)
	  || '/' || (SELECT count(*) FROM pgquant.tokens) || '/' || (SELECT count(q) FROM pgquant.tensors)
	ORDER BY 1};
my $orig = $node->safe_psql('src', $fingerprint_sql);
like($orig, qr/^n\|2\/44\/6\/18$/m, 'source: 2 models, 44 tensors, 6 tokens, 18 quantized');

my $tmp = PostgreSQL::Test::Utils::tempdir;

$node->command_ok([ 'pg_dump', '-Fp', '-f', "$tmp/src.sql", '-d', $node->connstr('src') ],
	'pg_dump plain');
$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain'), '-f', "$tmp/src.sql" ],
	'the plain dump restores without errors (foreign keys satisfied)');
is($node->safe_psql('dst_plain', $fingerprint_sql), $orig, 'plain dump: models, tensors and tokens identical');

$node->command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/src.dump", '-d', $node->connstr('src') ],
	'pg_dump custom');
$node->safe_psql('postgres', 'CREATE DATABASE dst_custom');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_custom'), "$tmp/src.dump" ],
	'pg_restore of the custom dump');
is($node->safe_psql('dst_custom', $fingerprint_sql), $orig, 'custom dump: models, tensors and tokens identical');

# the restored rows still obey the tables' constraints and foreign keys
is($node->safe_psql('dst_custom', q{
	DELETE FROM pgquant.models WHERE name = 'tiny';
	SELECT (SELECT count(*) FROM pgquant.tensors WHERE model = 'tiny'),
	       (SELECT parent IS NULL FROM pgquant.models WHERE name = 'tiny-q4')}),
	'0|t', 'after restore, deleting a model cascades to its tensors and clears its children\'s parent');

$node->stop;
done_testing();
