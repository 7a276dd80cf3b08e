#include <cblas.h>

/* LAPACK (in OpenBLAS): minimum-norm least squares by SVD, for pseudo-inverses. */
void dgelsd_(const int *m, const int *n, const int *nrhs, double *a, const int *lda, double *b, const int *ldb, double *s,
             const double *rcond, int *rank, double *work, const int *lwork, int *iwork, int *info);

/* LU factorisation with partial pivoting and the inverse from it, for WaveGlow's invertible
   1x1 convolutions (log|det W| and W^-1). */
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work, const int *lwork, int *info);

/* QR factorisation and its explicit Q, for random orthogonal initial matrices. */
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work, const int *lwork, int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau, double *work,
             const int *lwork, int *info);
