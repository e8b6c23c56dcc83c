# The per-backend tensor cache never serves a stale tensor: a session that has
# cached a model tensor sees another session's committed UPDATE, DELETE or added
# qtensor on its next call, and a REPEATABLE READ transaction keeps seeing its
# snapshot's version until it ends (the cache checks the row version on every
# lookup; docs/inference.md).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cache');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgquant;
	INSERT INTO pgquant.models (name, arch) VALUES ('m', 'none');
	INSERT INTO pgquant.tensors VALUES ('m', 'w', '{2,2}', 'F32', '{{1,2},{3,4}}');
});

# errors must not end the session: the last check expects one
my $a = $node->background_psql('postgres', on_error_stop => 0);
my $lin = q{SELECT pgquant.linear('m', 'w', '{1,1}')};

is($a->query_safe($lin), '{3,7}', 'session A computes with the stored tensor');
is($a->query_safe('SELECT tensors FROM pgquant.tensor_cache()'), '1', 'and caches it');

$node->safe_psql('postgres', q{UPDATE pgquant.tensors SET data = '{{10,20},{30,40}}' WHERE name = 'w'});
is($a->query_safe($lin), '{30,70}', 'another session\'s committed UPDATE is seen on the next call');

# a repeatable-read snapshot keeps its version, even after the cache saw a newer one elsewhere
$a->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($a->query_safe($lin), '{30,70}', 'a repeatable-read transaction reads its snapshot');
$node->safe_psql('postgres', q{UPDATE pgquant.tensors SET data = '{{100,200},{300,400}}' WHERE name = 'w'});
is($a->query_safe($lin), '{30,70}', 'a commit during the transaction is not seen inside it');
$a->query_safe('COMMIT');
is($a->query_safe($lin), '{300,700}', 'after the transaction the new version is used');

# an uncommitted change of another session is invisible; a rolled-back one never appears
my $b = $node->background_psql('postgres');
$b->query_safe(q{BEGIN; UPDATE pgquant.tensors SET data = '{{0,0},{0,0}}' WHERE name = 'w'});
is($a->query_safe($lin), '{300,700}', 'an uncommitted UPDATE of another session is not seen');
$b->query_safe('ROLLBACK');
is($a->query_safe($lin), '{300,700}', 'nor after it rolls back');

# a quantized version takes over as soon as it is committed
# (a deliberately different matrix, so the result shows which one was used)
$node->safe_psql('postgres', q{UPDATE pgquant.tensors SET q = quantize('{{1,1},{2,2}}', 'rtn', 8, sym => true) WHERE name = 'w'});
is($a->query_safe($lin), '{2,4}', 'an added qtensor is used at once');

# a deleted model's tensor is gone
$node->safe_psql('postgres', q{DELETE FROM pgquant.models WHERE name = 'm'});
my ($out, $failed) = $a->query($lin);
ok($failed && $a->{stderr} =~ /model "m" has no tensor "w"/, 'after DELETE the tensor is reported missing');

$a->quit;
$b->quit;
$node->stop;
done_testing();
