/*
 * infer.h: a stored model ready for the forward pass, shared by infer.c
 * (generate, perplexity, tokenizer) and calibrate.c (calibration capture).
 */
#ifndef PGQUANT_INFER_H
#define PGQUANT_INFER_H

#include "pgquant.h"

#include "llama.h"
#include "models.h"
#include "tokenizer.h"

typedef struct InferModel
{
	const char *name;
	LlamaModel	m;
	const PgqTokens *tokens;	/* NULL when not asked for */
	BpeVocab	vocab;
} InferModel;

/* the model's forward pass (and its tokenizer when need_tokens), or an ERROR saying what is missing */
void		PgqInferLoad(const char *model, InferModel *im, bool need_tokens);
/* tokens of a text (database encoding), with BOS when asked; the count in *n */
int		   *PgqInferEncode(InferModel *im, text *t, bool bos, int *n);
/* a state for up to max_pos positions (capture hook NULL) */
void		PgqInferState(InferModel *im, LlamaState *s, int max_pos);
/* ERROR when pgquant.device = 'cuda': the forward pass runs on the CPU only */
void		PgqInferCheckDevice(void);

#endif							/* PGQUANT_INFER_H */
