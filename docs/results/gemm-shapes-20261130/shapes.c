#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "gemm.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static void run(const char*name,int ta,int tb,size_t m,size_t n,size_t k){
  float*A=calloc(m*k,4),*B=calloc(k*n,4),*C=calloc(m*n,4);
  for(size_t i=0;i<m*k;i++)A[i]=(i%7)*0.1f; for(size_t i=0;i<k*n;i++)B[i]=(i%5)*0.1f;
  size_t lda=ta?m:k, ldb=tb?k:n;
  gemm(ta,tb,m,n,k,1,A,lda,B,ldb,0,C,n);
  double best=1e9; for(int r=0;r<5;r++){double t=now();gemm(ta,tb,m,n,k,1,A,lda,B,ldb,0,C,n);t=now()-t;if(t<best)best=t;}
  printf("%-22s m=%6zu n=%6zu k=%6zu %7.1f GFLOP/s %8.2f ms\n",name,m,n,k,2.0*m*n*k/best/1e9,best*1e3);
  free(A);free(B);free(C);}
int main(int c,char**v){int nb=c>1?atoi(v[1]):26; gemm_set_threads(1);
 run("L1 fwd W*col",0,0,128,nb*529,1152);
 run("L1 dW dy*colT",0,1,128,1152,nb*529);
 run("L1 dcol WT*dy",1,0,1152,nb*529,128);
 run("L0 fwd",0,0,128,nb*2209,27);
 run("L0 dW",0,1,128,27,nb*2209);
 run("L2 fwd",0,0,128,nb*121,1152);
 run("L2 dW",0,1,128,1152,nb*121);
 run("L2 dcol",1,0,1152,nb*121,128);
 run("square 2048",0,0,2048,2048,2048);
 return 0;}
