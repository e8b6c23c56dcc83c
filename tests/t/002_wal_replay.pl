# qtensor values written through WAL come back identical on a streaming standby
# and after a crash (immediate stop, no checkpoint) of the primary.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgquantTAP;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION pgquant');

# rows before the base backup reach the standby by copy, the rest by WAL replay
$primary->safe_psql('postgres', qtensor_fixture_sql('qt'));
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', q{
	CREATE TABLE qt2 (LIKE qt INCLUDING ALL);
	INSERT INTO qt2 SELECT * FROM qt;
	UPDATE qt2 SET q = quantize(dequantize(q), 'rtn', 8, 32) WHERE id IN (1, 13);
	DELETE FROM qt2 WHERE id = 2;
});
$primary->wait_for_catchup($standby);

my $fp_qt  = fingerprint($primary, 'postgres', 'qt');
my $fp_qt2 = fingerprint($primary, 'postgres', 'qt2');
is(scalar(split /\n/, $fp_qt2), 13, 'primary: qt2 has 13 rows after the delete');
is(fingerprint($standby, 'postgres', 'qt'),  $fp_qt,  'standby: base-backup rows identical');
is(fingerprint($standby, 'postgres', 'qt2'), $fp_qt2, 'standby: WAL-replayed rows identical');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM qt2 WHERE dequantize(q) IS NULL AND q IS NOT NULL'),
	'0', 'standby: every replayed value dequantizes');

# crash: write more, skip the checkpoint, stop immediately, recover from WAL
$standby->stop;
$primary->safe_psql('postgres', q{
	CREATE TABLE qt3 (LIKE qt INCLUDING ALL);
	INSERT INTO qt3 SELECT * FROM qt;
});
my $fp_qt3 = fingerprint($primary, 'postgres', 'qt3');
$primary->stop('immediate');
$primary->start;
is(fingerprint($primary, 'postgres', 'qt3'), $fp_qt3, 'after crash recovery: values identical');
is(fingerprint($primary, 'postgres', 'qt'),  $fp_qt,  'after crash recovery: older values identical');

$primary->stop;
done_testing();
