/* model.h: the network of the keras.io SimCLR example, assembled from layers.h.
 *
 *   encoder:    conv_layers x [conv k x k, stride 2, no padding, `width` channels, ReLU]
 *               (96 -> 47 -> 23 -> 11 -> 5 for 4 layers), flatten, dense `embed_dim` + ReLU
 *   projection: dense proj_dim + ReLU, dense proj_dim          (SimCLR's g(.))
 *   classifier: dense num_classes on the encoder output        (linear probe / fine-tune)
 *
 * All parameters live in ONE float buffer, tensors back to back in the order encoder,
 * projection head, classifier; so each group is one contiguous range (one allreduce, one
 * Adam call). Gradients and the two Adam moments are buffers of the same layout. Tensor
 * shapes follow PyTorch (conv (Cout, Cin, K, K), dense (out, in)); the names are those in
 * the checkpoints ("encoder.conv0.weight", ...). Activations are allocated once for
 * `max_batch` images; nothing is allocated by the forward/backward calls. */
#ifndef SIMCLR_MODEL_H
#define SIMCLR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"

#define MODEL_MAX_CONV 8
#define MODEL_MAX_TENSORS (2 * MODEL_MAX_CONV + 8)

enum { GROUP_ENCODER, GROUP_HEAD, GROUP_CLASSIFIER, NGROUPS };

typedef struct {
    int image_size;  /* input height = width (96 for STL-10) */
    int conv_layers; /* 1..MODEL_MAX_CONV */
    int width;       /* conv channels */
    int kernel;      /* conv kernel size (3) */
    int embed_dim;   /* encoder output (dense after the convs) */
    int proj_dim;    /* projection head width and output */
    int num_classes; /* classifier outputs */
} model_cfg;

typedef struct {
    char name[48];
    int group, ndim;
    int64_t shape[4];
    size_t offset, size; /* in floats, within the parameter buffer */
} param_tensor;

typedef struct {
    model_cfg cfg;
    conv_geom conv[MODEL_MAX_CONV];
    size_t flat_dim; /* width * hout * wout of the last conv */
    int ntensors;
    param_tensor tensor[MODEL_MAX_TENSORS];
    size_t nparams, group_begin[NGROUPS + 1]; /* group g spans [begin[g], begin[g+1]) */
    float *params, *grads, *adam_m, *adam_v;  /* nparams each */
    size_t max_batch;
    /* activations for up to max_batch images: act[0] is the input (3, n, S, S) CNHW,
     * act[i] the output of conv i-1 (CNHW); dact[i] its gradient (i >= 1) */
    float *act[MODEL_MAX_CONV + 1], *dact[MODEL_MAX_CONV + 1];
    float *flat, *dflat;     /* (n, flat_dim) */
    float *embed, *dembed;   /* (n, embed_dim): the encoder output h */
    float *hidden, *dhidden; /* (n, proj_dim): projection head hidden layer */
    float *proj, *dproj;     /* (n, proj_dim): projection z */
    float *logits, *dlogits; /* (n, num_classes) */
    float *ws;               /* im2col workspace */
    size_t ws_floats;
} model;

/* Checks cfg (fatal EXIT_CONFIG naming the model.* key when the geometry is impossible),
 * lays out the tensors, allocates parameters, gradients, Adam moments (all zero) and
 * activations for max_batch images with an im2col workspace of ws_floats floats (raised
 * to the one-image minimum). Pair with model_free. */
void model_init(model *m, const model_cfg *cfg, size_t max_batch, size_t ws_floats);
void model_free(model *m);

/* Glorot-uniform weights (limit sqrt(6 / (fan_in + fan_out)), fans as Keras computes them
 * for conv: cin*k*k and cout*k*k), zero biases, for the tensors of group `group` (or all
 * groups when group < 0), from a counter-based stream keyed by seed. */
void model_init_weights(model *m, int group, uint64_t seed);

/* Pointer to tensor `name`'s parameters (buf = m->params) or any buffer of the same
 * layout (grads, adam_m, adam_v). NULL if there is no such tensor. */
const param_tensor *model_find(const model *m, const char *name);

/* Zeroes the gradients of groups [g0, g1). */
void model_zero_grad(model *m, int g0, int g1);

/* Encoder on n <= max_batch images in act[0] (3, n, S, S) CNHW -> embed (n, embed_dim). */
void encoder_forward(model *m, size_t n);
/* Backward from dembed (n, embed_dim); accumulates encoder gradients (clobbers dembed). */
void encoder_backward(model *m, size_t n);

/* Projection head: embed -> proj (n, proj_dim). Backward from dproj: accumulates head
 * gradients and overwrites dembed. */
void head_forward(model *m, size_t n);
void head_backward(model *m, size_t n);

/* Classifier: embed -> logits (n, num_classes). Backward from dlogits: accumulates
 * classifier gradients; overwrites dembed when need_dembed != 0. */
void classifier_forward(model *m, size_t n);
void classifier_backward(model *m, size_t n, int need_dembed);

/* GFLOP of one image through encoder + head, forward only (multiply-adds x 2). */
double model_forward_gflop(const model *m);

#endif
