/*
 * gen_mixture.c: a seeded synthetic ANN dataset, written as TEXMEX .fvecs.
 *
 *   gen_mixture N DIM CLUSTERS SUBDIM SEED OUT.fvecs [CHUNK]
 *
 * A Gaussian mixture of CLUSTERS clusters in a random SUBDIM-dimensional
 * subspace of R^DIM, plus small isotropic noise:
 *   basis B: DIM x SUBDIM, entries N(0, 1 / SUBDIM)
 *   centres mu_k in R^SUBDIM: N(0, 1)
 *   point  x = B (mu_k + 0.35 z) + 0.05 e,  z ~ N(0, I_SUBDIM), e ~ N(0, I_DIM)
 * with k uniform.  The basis and centres depend only on SEED's high bits
 * (SEED >> 8), the points on all of SEED: base vectors and queries from the
 * same mixture use seeds that differ in the low byte (for example 4200 and
 * 4201).  With CHUNK, the output is OUT.fvecs.0, OUT.fvecs.1, ... of at most
 * CHUNK vectors each (pg_read_binary_file reads at most 1 GB).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"

static double
gauss(QtRng *r)
{
	double		u1 = qt_rng_double(r) + 1e-300,
				u2 = qt_rng_double(r);

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int
main(int argc, char **argv)
{
	long		n,
				chunk;
	int			dim,
				nclusters,
				subdim;
	unsigned long long seed;
	float	   *basis,
			   *centres,
			   *x;
	double	   *y;
	QtRng		shape,
				pts;
	FILE	   *out = NULL;
	int			file = 0;

	if (argc < 7)
	{
		fprintf(stderr, "usage: %s N DIM CLUSTERS SUBDIM SEED OUT.fvecs [CHUNK]\n", argv[0]);
		return 2;
	}
	n = atol(argv[1]);
	dim = atoi(argv[2]);
	nclusters = atoi(argv[3]);
	subdim = atoi(argv[4]);
	seed = strtoull(argv[5], NULL, 10);
	chunk = argc > 7 ? atol(argv[7]) : n;
	if (n < 1 || dim < 1 || nclusters < 1 || subdim < 1 || subdim > dim || chunk < 1)
	{
		fprintf(stderr, "invalid arguments\n");
		return 2;
	}
	basis = malloc(sizeof(float) * dim * subdim);
	centres = malloc(sizeof(float) * nclusters * subdim);
	x = malloc(sizeof(float) * dim);
	y = malloc(sizeof(double) * subdim);
	if (!basis || !centres || !x || !y)
		return 2;

	qt_rng_seed(&shape, (seed >> 8) * 0x9e3779b97f4a7c15ULL + 1);
	for (long i = 0; i < (long) dim * subdim; i++)
		basis[i] = (float) (gauss(&shape) / sqrt((double) subdim));
	for (long i = 0; i < (long) nclusters * subdim; i++)
		centres[i] = (float) gauss(&shape);

	qt_rng_seed(&pts, seed * 0xbf58476d1ce4e5b9ULL + 7);
	for (long i = 0; i < n; i++)
	{
		int			k = (int) qt_rng_below(&pts, (uint64_t) nclusters);

		if (i % chunk == 0)
		{
			char		name[4096];

			if (out)
				fclose(out);
			if (argc > 7)
				snprintf(name, sizeof(name), "%s.%d", argv[6], file++);
			else
				snprintf(name, sizeof(name), "%s", argv[6]);
			if ((out = fopen(name, "wb")) == NULL)
			{
				perror(name);
				return 1;
			}
		}
		for (int s = 0; s < subdim; s++)
			y[s] = centres[(long) k * subdim + s] + 0.35 * gauss(&pts);
		for (int t = 0; t < dim; t++)
		{
			double		v = 0.05 * gauss(&pts);

			for (int s = 0; s < subdim; s++)
				v += (double) basis[(long) t * subdim + s] * y[s];
			x[t] = (float) v;
		}
		if (fwrite(&dim, 4, 1, out) != 1 || fwrite(x, 4, dim, out) != (size_t) dim)
		{
			perror("write");
			return 1;
		}
	}
	if (out)
		fclose(out);
	free(basis);
	free(centres);
	free(x);
	free(y);
	return 0;
}
