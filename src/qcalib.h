/*
 * qcalib.h: quantizers that optimize beyond round-to-nearest (HQQ, GPTQ,
 * AWQ) and the calibration statistics they read.  Floor 1: plain C with no
 * PostgreSQL headers, so everything here is unit-tested outside the server.
 *
 * These quantizers choose each group's scale and zero point (and, for GPTQ,
 * the codes themselves) by optimization, so a tensor is built in two steps:
 * the method fills per-group parameters (scales [rows][ngroups] as floats,
 * zero points [rows][ngroups] as bytes), then qt_params_plan() picks the
 * scale type and qt_params_encode() / qt_params_write() store them.
 *
 * Memory: the methods allocate through qc_alloc/qc_free, which the
 * extension points at palloc so that an error (including a cancel raised
 * by qt_interrupt_hook, which does not return) frees everything with the
 * memory context.  Outside the server they are malloc and free.
 */
#ifndef PGQUANT_QCALIB_H
#define PGQUANT_QCALIB_H

#include "qformat.h"
#include "quant.h"

extern void *(*qc_alloc) (size_t size);
extern void (*qc_free) (void *p);

/* ---- building a tensor from per-group parameters (qparams.c) ---- */

/* QT_SCALE_FP16 when every nonzero |scale| lies in fp16's normal range, else fp32 */
int			qt_params_scale_type(const float *scales, int64_t n);

/*
 * Header and layout for a tensor whose group parameters are already known.
 * flags: QT_FLAG_* (zero points, channel scales, permutation, 1-D).
 */
QtStatus	qt_params_plan(int method, int bits, int group_size, uint16_t flags,
						   int scale_type, int32_t rows, int32_t cols,
						   QtHeader *h, QtLayout *l, char *err);

/*
 * Store scales (rounded to the header's scale type), zero points (NULL when
 * symmetric) and codes round(w / s) + z computed from the stored scale.
 * w is in stored column order, rows x cols.
 */
void		qt_params_encode(const float *w, uint8_t *buf, const QtLayout *l,
							 const float *scales, const uint8_t *zeros);

/* Store scales, zero points and ready-made codes (one byte each, rows x cols). */
void		qt_params_write(uint8_t *buf, const QtLayout *l, const float *scales,
							const uint8_t *zeros, const uint8_t *codes);

/* ---- HQQ (quant_hqq.c) ---- */

/*
 * Half-quadratic quantization settings, the reference implementation's
 * defaults: lp_norm 0.7, beta 10, kappa 1.01, 20 iterations, early stop.
 */
typedef struct QtHqqParams
{
	float		lp_norm;		/* p of the sparsity-promoting |e|^p error, 0 < p <= 1 */
	float		beta;			/* initial penalty of the split W_e = W - W_r */
	float		kappa;			/* beta grows by this factor each iteration */
	int			iters;			/* at most this many iterations */
} QtHqqParams;

extern const QtHqqParams qt_hqq_defaults;

/*
 * One group of n weights: starting from *s, *z (round-to-nearest), return
 * the parameters of lowest mean |w - dequant(w)| found.  symmetric keeps
 * z fixed at 2^(b-1) and optimizes the scale alone.
 */
void		qt_hqq_group(const float *g, int64_t n, int bits, bool symmetric,
						 const QtHqqParams *p, float *s, int *z);

/*
 * A whole matrix, rows x cols in groups of group_len along a row:
 * scales [rows][ngroups] and zeros [rows][ngroups] (unused when symmetric).
 */
void		qt_hqq_matrix(const float *w, int32_t rows, int32_t cols, int64_t group_len,
						  int bits, bool symmetric, const QtHqqParams *p,
						  float *scales, uint8_t *zeros);

/* ---- GPTQ (quant_gptq.c) ---- */

#define QT_GPTQ_BLOCK 128		/* columns per lazy-update block, as the reference */

typedef struct QtGptqSpec
{
	int			bits;			/* 2..8 */
	int			group_size;		/* > 0, or QT_GROUP_PER_CHANNEL */
	bool		symmetric;
	bool		act_order;		/* process columns by descending diag(H) */
	bool		static_groups;	/* group parameters from the original weights */
	double		percdamp;		/* dampening, a fraction of mean(diag(H)); the reference's 0.01 */
	int			block_size;		/* 0 for QT_GPTQ_BLOCK */
} QtGptqSpec;

typedef struct QtGptqResult
{
	float	   *scales;			/* [rows][ngroups], exactly as they will be stored */
	uint8_t    *zeros;			/* [rows][ngroups] */
	uint8_t    *codes;			/* [rows][cols], stored column order */
	int32_t    *perm;			/* [cols] stored column j holds original column perm[j]; NULL without */
	int			scale_type;		/* QT_SCALE_FP16 when every scale fits, else QT_SCALE_FP32 */
	double		damp;			/* the dampening that succeeded */
	int			retries;		/* how many times it grew tenfold */
	int			n_dead;			/* input channels whose X^T X diagonal is 0 */
} QtGptqResult;

/*
 * w: rows x cols, row-major; xtx: cols x cols, X^T X (any positive multiple),
 * symmetric and with a non-negative diagonal.  On success res holds
 * everything a qtensor needs; free it with qt_gptq_result_free.
 */
QtStatus	qt_gptq(const float *w, int32_t rows, int32_t cols, const float *xtx,
					const QtGptqSpec *spec, QtGptqResult *res, char *err);
/* the oracle: same result in exact arithmetic, every update applied at once */
QtStatus	qt_gptq_ref(const float *w, int32_t rows, int32_t cols, const float *xtx,
						const QtGptqSpec *spec, QtGptqResult *res, char *err);
void		qt_gptq_result_free(QtGptqResult *res);

/* ---- AWQ (quant_awq.c) ---- */

#define QT_AWQ_GRID 20			/* grid points of alpha in [0, 1) and clipping steps, as the reference */
#define QT_AWQ_MAX_SHRINK 0.5	/* the clipping search shrinks the range by at most this */
#define QT_AWQ_SEARCH_ROWS 1024 /* output rows the scale search evaluates at most */

typedef struct QtAwqSpec
{
	int			bits;
	int			group_size;		/* > 0, or QT_GROUP_PER_CHANNEL */
	bool		symmetric;
	int			n_grid;			/* 0 for QT_AWQ_GRID */
	double		max_shrink;		/* 0 for QT_AWQ_MAX_SHRINK */
	int			search_rows;	/* 0: every row */
} QtAwqSpec;

typedef struct QtAwqResult
{
	float	   *chscale;		/* [cols] s, > 0: the tensor stores Q(W diag(s)) and divides by s */
	float	   *scales;			/* [rows][ngroups], as stored */
	uint8_t    *zeros;			/* [rows][ngroups] */
	uint8_t    *codes;			/* [rows][cols] */
	int			scale_type;
	double		alpha;			/* the exponent chosen (0 without activation statistics) */
	double		loss_rtn;		/* output error of the scale search at alpha = 0 (plain RTN) */
	double		loss_scaled;	/* ... and at the chosen alpha, before clipping */
} QtAwqResult;

/*
 * w: rows x cols row-major.  Statistics of the layer's inputs: h, the full
 * X^T X (cols x cols), or else hdiag, its diagonal (sum x^2), or neither
 * (errors in weight space); mean_abs: mean |x| per channel, or NULL for the
 * data-free form (no scale search).
 */
QtStatus	qt_awq(const float *w, int32_t rows, int32_t cols, const float *h, const float *hdiag,
				   const float *mean_abs, const QtAwqSpec *spec, QtAwqResult *res, char *err);
void		qt_awq_result_free(QtAwqResult *res);

/* ---- calibration statistics of a layer's input activations (calib_stats.c) ---- */

/*
 * Streaming statistics of activation rows x (one row per token, n input
 * features): X^T X (GPTQ's Hessian, up to the factor 2 / nrows), and per
 * channel sum |x| (AWQ), max |x| (SmoothQuant) and sum x^2 (importance
 * matrices).  Rows are buffered QC_STATS_BLOCK at a time and folded in with
 * one single-precision rank-k update (cblas_ssyrk) whose result is added to
 * a double-precision accumulator, so memory does not grow with the number
 * of rows and long sums keep double precision.
 */
#define QC_STATS_BLOCK 512
/* an n x n real[] must fit one PostgreSQL array (134,217,727 elements) */
#define QC_MAX_HESSIAN_FEATURES 11585
#define QC_MAX_FEATURES ((int32_t) (QT_MAX_ELEMS))

typedef struct QcStats
{
	int32_t		n;				/* features per row */
	bool		hessian;		/* whether X^T X is kept */
	int32_t		nbuf;			/* rows waiting in buf */
	int64_t		nrows;			/* rows folded in so far, buffered ones included */
	double	   *xtx;			/* [n][n] X^T X, upper triangle (j >= i) only; NULL without */
	double	   *sum_abs;		/* [n] sum of |x| */
	double	   *sum_sq;			/* [n] sum of x^2 */
	float	   *max_abs;		/* [n] largest |x| */
	float	   *buf;			/* [QC_STATS_BLOCK][n] rows not yet folded in */
	float	   *tmp;			/* [n][n] one block's X^T X; NULL without hessian */
} QcStats;

/* NULL when out of memory (outside the server) */
QcStats    *qc_stats_new(int32_t n, bool hessian);
void		qc_stats_free(QcStats *s);
/* nrows rows of s->n finite floats each */
void		qc_stats_add(QcStats *s, const float *x, int64_t nrows);
void		qc_stats_flush(QcStats *s);
/* dst += src; the widths and hessian flags must agree */
QtStatus	qc_stats_merge(QcStats *dst, QcStats *src, char *err);

/* the serialized state: checked field by field when read back */
size_t		qc_stats_serial_size(const QcStats *s);
void		qc_stats_serialize(QcStats *s, uint8_t *out);
QtStatus	qc_stats_deserialize(const uint8_t *in, size_t len, QcStats **out, char *err);

/* X^T X as a full symmetric n x n float matrix */
void		qc_stats_hessian(QcStats *s, float *out);

/*
 * sum over the rows r of x (rows x n, row-major) of x_r^T H x_r, that is
 * ||X x^T||_F^2 for activations X with X^T X = H (full symmetric n x n).
 * tmp holds rows x n floats.  Accumulated in double.
 */
double		qc_hessian_energy(const float *x, int64_t rows, int32_t n, const float *h, float *tmp);

#endif							/* PGQUANT_QCALIB_H */
