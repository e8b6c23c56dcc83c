/*
 * ivfpq.c: the ivfpq access method's handler, options, settings, cost
 * estimate and operator class validator.
 */
#include "ivfpq.h"

#include "fastscan.h"

#include <float.h>

#include "access/amvalidate.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(ivfpqhandler);

int			pgquant_ivfpq_probes = IVFPQ_DEFAULT_PROBES;
int			pgquant_ivfpq_rerank = IVFPQ_DEFAULT_RERANK;
static relopt_kind ivfpq_relopt_kind;

/* reloptions and settings; called once from _PG_init */
void
PgqIvfpqInit(void)
{
	const char *kernel;

	ivfpq_relopt_kind = add_reloption_kind();
	add_int_reloption(ivfpq_relopt_kind, "lists", "Number of inverted lists (coarse centroids)",
					  IVFPQ_DEFAULT_LISTS, IVFPQ_MIN_LISTS, IVFPQ_MAX_LISTS, AccessExclusiveLock);
	add_int_reloption(ivfpq_relopt_kind, "m", "Number of PQ subquantizers (0: dimension / 8)",
					  0, 0, IVFPQ_MAX_DIM, AccessExclusiveLock);
	add_int_reloption(ivfpq_relopt_kind, "nbits", "Bits per PQ code",
					  IVFPQ_DEFAULT_NBITS, QT_PQ_MIN_NBITS, QT_PQ_MAX_NBITS, AccessExclusiveLock);

	DefineCustomIntVariable("pgquant.probes",
							"Lists an ivfpq index scan visits.",
							"More lists find more true neighbours and cost more; capped at the index's lists.",
							&pgquant_ivfpq_probes, IVFPQ_DEFAULT_PROBES, 1, IVFPQ_MAX_LISTS,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgquant.rerank",
							"Candidates an ivfpq index scan re-ranks with exact distances from the table.",
							"The scan orders candidates by their compressed (ADC) distance, then reads this many "
							"from the table at a time and returns them in exact order; 0 returns ADC order.",
							&pgquant_ivfpq_rerank, IVFPQ_DEFAULT_RERANK, 0, IVFPQ_MAX_RERANK,
							PGC_USERSET, 0, NULL, NULL, NULL);
	/* the fast-scan kernel for this CPU, chosen once (not inside elog: its arguments run only when it logs) */
	kernel = qt_fs_init();
	elog(DEBUG1, "pgquant: fast-scan kernel %s", kernel);
}

static char *
ivfpqbuildphasename(int64 phase)
{
	switch (phase)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case IVFPQ_PHASE_SAMPLE:
			return "sampling rows";
		case IVFPQ_PHASE_TRAIN_COARSE:
			return "training coarse quantizer";
		case IVFPQ_PHASE_TRAIN_PQ:
			return "training product quantizer";
		case IVFPQ_PHASE_ENCODE:
			return "assigning and encoding tuples";
		case IVFPQ_PHASE_LOAD:
			return "loading tuples";
		default:
			return NULL;
	}
}

static bytea *
ivfpqoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"lists", RELOPT_TYPE_INT, offsetof(IvfpqOptions, lists)},
		{"m", RELOPT_TYPE_INT, offsetof(IvfpqOptions, m)},
		{"nbits", RELOPT_TYPE_INT, offsetof(IvfpqOptions, nbits)},
	};

	return (bytea *) build_reloptions(reloptions, validate, ivfpq_relopt_kind,
									  sizeof(IvfpqOptions), tab, lengthof(tab));
}

/*
 * Cost: only an ORDER BY <distance> scan can use the index (infinite cost
 * otherwise).  Such a scan reads the probed lists' pages, about
 * probes / lists of the index, before returning its first row, so most of
 * its cost is startup cost; the pages are read in sequence.
 */
static void
ivfpqcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				  Cost *indexStartupCost, Cost *indexTotalCost,
				  Selectivity *indexSelectivity, double *indexCorrelation,
				  double *indexPages)
{
	GenericCosts costs;
	IvfpqMetaPageData meta;
	Relation	index;
	double		ratio,
				spc_seq_page_cost;
	int			lists;

	if (path->indexorderbys == NIL)
	{
		*indexStartupCost = get_float8_infinity();
		*indexTotalCost = get_float8_infinity();
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
		return;
	}

	MemSet(&costs, 0, sizeof(costs));
	genericcostestimate(root, path, loop_count, &costs);

	index = index_open(path->indexinfo->indexoid, NoLock);
	IvfpqReadMeta(index, &meta);
	index_close(index, NoLock);
	lists = (meta.flags & IVFPQ_META_TRAINED) ? Max(meta.lists, 1) : 1;
	ratio = Min(1.0, (double) pgquant_ivfpq_probes / lists);

	/* the probed fraction of the pages, read sequentially; plus the re-ranking heap reads */
	get_tablespace_page_costs(path->indexinfo->reltablespace, NULL, &spc_seq_page_cost);
	costs.indexTotalCost -= costs.numIndexPages * (costs.spc_random_page_cost - spc_seq_page_cost);
	costs.indexStartupCost = costs.indexTotalCost * ratio +
		Min(pgquant_ivfpq_rerank, path->indexinfo->tuples) * cpu_tuple_cost;
	costs.indexTotalCost = Max(costs.indexTotalCost, costs.indexStartupCost);

	*indexStartupCost = costs.indexStartupCost;
	*indexTotalCost = costs.indexTotalCost;
	*indexSelectivity = costs.indexSelectivity;
	*indexCorrelation = costs.indexCorrelation;
	*indexPages = costs.numIndexPages * ratio;
}

/*
 * Validator for an ivfpq operator class: one ORDER BY operator (strategy 1)
 * returning float8 over the class's type, sorted by a float8 btree family,
 * and support function 1, the same distance as a function (real[], real[])
 * -> float8.
 */
static bool
ivfpqvalidate(Oid opclassoid)
{
	bool		result = true;
	HeapTuple	classtup,
				familytup;
	Form_pg_opclass classform;
	Form_pg_opfamily familyform;
	Oid			opfamilyoid,
				opcintype;
	char	   *opclassname,
			   *opfamilyname;
	CatCList   *proclist,
			   *oprlist;
	List	   *grouplist;
	OpFamilyOpFuncGroup *opclassgroup = NULL;
	ListCell   *lc;

	classtup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
	classform = (Form_pg_opclass) GETSTRUCT(classtup);
	opfamilyoid = classform->opcfamily;
	opcintype = classform->opcintype;
	opclassname = NameStr(classform->opcname);

	familytup = SearchSysCache1(OPFAMILYOID, ObjectIdGetDatum(opfamilyoid));
	if (!HeapTupleIsValid(familytup))
		elog(ERROR, "cache lookup failed for operator family %u", opfamilyoid);
	familyform = (Form_pg_opfamily) GETSTRUCT(familytup);
	opfamilyname = NameStr(familyform->opfname);

	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(opfamilyoid));
	proclist = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(opfamilyoid));

	if (opcintype != FLOAT4ARRAYOID)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("ivfpq opclass %s indexes type %s, but ivfpq indexes real[]",
						opclassname, format_type_be(opcintype))));
		result = false;
	}

	for (int i = 0; i < proclist->n_members; i++)
	{
		HeapTuple	proctup = &proclist->members[i]->tuple;
		Form_pg_amproc procform = (Form_pg_amproc) GETSTRUCT(proctup);

		if (procform->amprocnum != IVFPQ_DISTANCE_PROC)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("ivfpq opfamily %s contains function %s with invalid support number %d",
							opfamilyname, format_procedure(procform->amproc), procform->amprocnum)));
			result = false;
			continue;
		}
		if (procform->amproclefttype != procform->amprocrighttype ||
			!check_amproc_signature(procform->amproc, FLOAT8OID, true, 2, 2,
									procform->amproclefttype, procform->amproclefttype))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("ivfpq opfamily %s contains function %s with wrong signature for support number %d",
							opfamilyname, format_procedure(procform->amproc), procform->amprocnum)));
			result = false;
		}
	}

	for (int i = 0; i < oprlist->n_members; i++)
	{
		HeapTuple	oprtup = &oprlist->members[i]->tuple;
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(oprtup);

		if (oprform->amopstrategy < 1 || oprform->amopstrategy > IVFPQ_NSTRATEGIES)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("ivfpq opfamily %s contains operator %s with invalid strategy number %d",
							opfamilyname, format_operator(oprform->amopopr), oprform->amopstrategy)));
			result = false;
		}
		/* ivfpq only orders: every operator is ORDER BY, sorted as float8 */
		if (oprform->amoppurpose != AMOP_ORDER ||
			!OidIsValid(oprform->amopsortfamily) ||
			get_opfamily_member(oprform->amopsortfamily, FLOAT8OID, FLOAT8OID, BTLessStrategyNumber) == InvalidOid)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("ivfpq opfamily %s contains operator %s that is not ORDER BY with a float8 sort family",
							opfamilyname, format_operator(oprform->amopopr))));
			result = false;
		}
		if (!check_amop_signature(oprform->amopopr, FLOAT8OID, oprform->amoplefttype, oprform->amoprighttype))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("ivfpq opfamily %s contains operator %s with wrong signature",
							opfamilyname, format_operator(oprform->amopopr))));
			result = false;
		}
	}

	grouplist = identify_opfamily_groups(oprlist, proclist);
	foreach(lc, grouplist)
	{
		OpFamilyOpFuncGroup *g = (OpFamilyOpFuncGroup *) lfirst(lc);

		if (g->lefttype == opcintype && g->righttype == opcintype)
			opclassgroup = g;
	}
	for (int i = 1; i <= IVFPQ_NPROC; i++)
	{
		if (opclassgroup && (opclassgroup->functionset & (((uint64) 1) << i)) != 0)
			continue;
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("ivfpq opclass %s is missing support function %d", opclassname, i)));
		result = false;
	}
	if (opclassgroup == NULL || (opclassgroup->operatorset & (((uint64) 1) << 1)) == 0)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("ivfpq opclass %s is missing its ORDER BY operator (strategy 1)", opclassname)));
		result = false;
	}

	ReleaseCatCacheList(proclist);
	ReleaseCatCacheList(oprlist);
	ReleaseSysCache(familytup);
	ReleaseSysCache(classtup);
	return result;
}

Datum
ivfpqhandler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = IVFPQ_NSTRATEGIES;
	am->amsupport = IVFPQ_NPROC;
	am->amoptsprocnum = 0;
	am->amcanorder = false;
	am->amcanorderbyop = true;
	am->amcanbackward = false;
	am->amcanunique = false;
	am->amcanmulticol = false;
	am->amoptionalkey = true;
	am->amsearcharray = false;
	am->amsearchnulls = false;
	am->amstorage = false;
	am->amclusterable = false;
	am->ampredlocks = false;
	am->amcanparallel = false;
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = false;
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;

	am->ambuild = ivfpqbuild;
	am->ambuildempty = ivfpqbuildempty;
	am->aminsert = ivfpqinsert;
	am->ambulkdelete = ivfpqbulkdelete;
	am->amvacuumcleanup = ivfpqvacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = ivfpqcostestimate;
	am->amoptions = ivfpqoptions;
	am->amproperty = NULL;
	am->ambuildphasename = ivfpqbuildphasename;
	am->amvalidate = ivfpqvalidate;
	am->amadjustmembers = NULL;
	am->ambeginscan = ivfpqbeginscan;
	am->amrescan = ivfpqrescan;
	am->amgettuple = ivfpqgettuple;
	am->amgetbitmap = NULL;
	am->amendscan = ivfpqendscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}
