#include <cblas.h>

/* LAPACK (in OpenBLAS): minimum-norm least squares by SVD, for pseudo-inverses. */
void dgelsd_(const int *m, const int *n, const int *nrhs, double *a, const int *lda, double *b, const int *ldb, double *s,
             const double *rcond, int *rank, double *work, const int *lwork, int *iwork, int *info);
