/* model.h: the network of the keras.io SimCLR example, assembled from layers.h.
 *
 *   encoder:    conv_layers x [conv k x k, stride 2, no padding, `width` channels, ReLU]
 *               (96 -> 47 -> 23 -> 11 -> 5 for 4 layers), flatten, dense `embed_dim` + ReLU;
 *               with batchnorm: conv (no bias) -> BatchNorm2d (statistics over the global
 *               batch, all ranks) -> ReLU, as in SimCLR's ResNet (Chen et al. 2020, B.9)
 *   projection: dense proj_dim + ReLU, dense proj_dim          (SimCLR's g(.))
 *   classifier: dense num_classes on the encoder output        (linear probe / fine-tune),
 *               or with classifier_on_conv on the flattened last conv feature map
 *               (flat_dim = width x 5 x 5: the linear probe of model.probe_features = "conv"),
 *               or with classifier_on_head on the head's hidden layer, ReLU(head.fc0(h))
 *               (proj_dim: fine-tuning from the projection head's first layer, SimCLR v2,
 *               Chen et al. 2020b, section 2.2; model.finetune_from = "head0")
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
#define MODEL_MAX_TENSORS (3 * MODEL_MAX_CONV + 8)

enum { GROUP_ENCODER, GROUP_HEAD, GROUP_CLASSIFIER, NGROUPS };

typedef struct {
    int image_size;  /* input height = width (96 for STL-10) */
    int conv_layers; /* 1..MODEL_MAX_CONV */
    int width;       /* conv channels */
    int kernel;      /* conv kernel size (3) */
    int embed_dim;   /* encoder output (dense after the convs) */
    int proj_dim;    /* projection head width and output */
    int num_classes; /* classifier outputs */
    int batchnorm;   /* 0: the keras example (conv bias + ReLU); 1: conv + BatchNorm + ReLU */
    int classifier_on_conv; /* 0: classifier on embed (embed_dim inputs); 1: on flat (flat_dim);
                             * not a config key: phases.c sets it for the linear probe */
    int classifier_on_head; /* 1: classifier on hidden = ReLU(head.fc0(embed)) (proj_dim inputs);
                             * phases.c sets it from model.finetune_from; not with on_conv */
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
    /* tensor indices: conv i weight, bias (-1 with batchnorm), BatchNorm weight/bias (-1
     * without); encoder.fc weight (bias = +1), head.fc0 (fc1 = +2), classifier */
    int t_conv_w[MODEL_MAX_CONV], t_conv_b[MODEL_MAX_CONV], t_bn[MODEL_MAX_CONV];
    int t_fc, t_head, t_cls;
    /* non-trained state (checkpoint group /buffers, encoder group): BatchNorm running
     * mean and variance of each conv layer, "encoder.bnI.running_mean" / "running_var" */
    int nbuffers;
    param_tensor buffer[2 * MODEL_MAX_CONV];
    size_t nbuffer_floats;
    float *buffers;
    int trained;      /* the last encoder_forward ran in training mode (checked by the backward) */
    bn_reduce reduce; /* sums BatchNorm statistics over ranks (NULL fn: this process only) */
    size_t max_batch;
    /* activations for up to max_batch images: act[0] is the input (3, n, S, S) CNHW,
     * act[i] the output of conv i-1 (CNHW); dact[i] its gradient (i >= 1) */
    float *act[MODEL_MAX_CONV + 1], *dact[MODEL_MAX_CONV + 1];
    /* with batchnorm: pre[i] = conv i-1 output before BatchNorm (CNHW; act[i] is after
     * BatchNorm + ReLU); bn_mean/bn_invstd (width) the statistics it used; bn_sums 2w+1 */
    float *pre[MODEL_MAX_CONV + 1], *bn_mean[MODEL_MAX_CONV], *bn_invstd[MODEL_MAX_CONV];
    double *bn_sums;
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
 * for conv: cin*k*k and cout*k*k), zero biases, BatchNorm weight 1, bias 0, running mean
 * 0, variance 1 (PyTorch's init), for the tensors of group `group` (or all groups when
 * group < 0), from a counter-based stream keyed by seed. */
void model_init_weights(model *m, int group, uint64_t seed);

/* Pointer to tensor `name`'s parameters (buf = m->params) or any buffer of the same
 * layout (grads, adam_m, adam_v). NULL if there is no such tensor. */
const param_tensor *model_find(const model *m, const char *name);

/* Zeroes the gradients of groups [g0, g1). */
void model_zero_grad(model *m, int g0, int g1);

/* Encoder on n <= max_batch images in act[0] (3, n, S, S) CNHW -> embed (n, embed_dim).
 * BatchNorm (with batchnorm): train != 0 normalises with the statistics of the n images
 * here plus, through m->reduce, the other ranks' images of the same call (every rank must
 * then call it: it is a collective) and updates the running statistics; train == 0 uses
 * the running statistics (no communication). Without batchnorm train has no effect. */
void encoder_forward(model *m, size_t n, int train);
/* Backward from dembed (n, embed_dim) of the last encoder_forward, which must have run
 * in training mode when batchnorm is on (a collective then, like the forward);
 * accumulates encoder gradients (clobbers dembed). */
void encoder_backward(model *m, size_t n);

/* Projection head: embed -> proj (n, proj_dim). Backward from dproj: accumulates head
 * gradients and overwrites dembed. */
void head_forward(model *m, size_t n);
void head_backward(model *m, size_t n);

/* Classifier: embed (n, embed_dim), or with classifier_on_conv flat (n, flat_dim), ->
 * logits (n, num_classes), overwritten. With classifier_on_head the forward first computes
 * hidden (n, proj_dim) = ReLU(head.fc0(embed)) (overwritten) and the classifier reads it.
 * Backward from dlogits: accumulates classifier gradients (with classifier_on_head also
 * head.fc0's, through dhidden, overwritten); overwrites dembed when need_dembed != 0 (not
 * allowed with classifier_on_conv: CHECK fails, the encoder is frozen under such a probe). */
void classifier_forward(model *m, size_t n);
void classifier_backward(model *m, size_t n, int need_dembed);

/* GFLOP of one image through encoder + head, forward only (multiply-adds x 2). */
double model_forward_gflop(const model *m);

#endif
