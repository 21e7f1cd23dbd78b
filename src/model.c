/* model.c: parameter layout, Glorot init, encoder / projection head / classifier passes. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Describes tensor t, placed at *total floats into its buffer; advances *total. */
static void fill_tensor(param_tensor *t, const char *name, int group, int ndim, const int64_t *shape, size_t *total)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->group = group;
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->size *= (size_t)shape[i];
    }
    t->offset = *total;
    *total += t->size;
}

static void add_tensor(model *m, const char *name, int group, int ndim, const int64_t *shape)
{
    CHECK(m->ntensors < MODEL_MAX_TENSORS);
    fill_tensor(&m->tensor[m->ntensors++], name, group, ndim, shape, &m->nparams);
}

static void add_dense(model *m, const char *prefix, int group, int64_t in, int64_t out)
{
    char name[48];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add_tensor(m, name, group, 2, (int64_t[]){out, in});
    snprintf(name, sizeof name, "%s.bias", prefix);
    add_tensor(m, name, group, 1, (int64_t[]){out});
}

void model_init(model *m, const model_cfg *cfg, size_t max_batch, size_t ws_floats)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (cfg->conv_layers < 1 || cfg->conv_layers > MODEL_MAX_CONV)
        fatal(EXIT_CONFIG, "model.conv_layers = %d: must be 1..%d", cfg->conv_layers, MODEL_MAX_CONV);
    if (cfg->width < 1 || cfg->kernel < 1 || cfg->embed_dim < 1 || cfg->proj_dim < 1 ||
        cfg->num_classes < 2)
        fatal(EXIT_CONFIG, "model.width, kernel, embed_dim, proj_dim must be >= 1 and "
                           "data.num_classes >= 2");
    int size = cfg->image_size, cin = 3;
    for (int i = 0; i < cfg->conv_layers; i++) {
        if (size < cfg->kernel)
            fatal(EXIT_CONFIG, "model.conv_layers = %d: the image (%d px) shrinks below the "
                  "kernel at layer %d", cfg->conv_layers, cfg->image_size, i);
        m->conv[i] = conv_geom_make(cin, cfg->width, cfg->kernel, 2, 0, size, size);
        char name[48];
        snprintf(name, sizeof name, "encoder.conv%d.weight", i);
        m->t_conv_w[i] = m->ntensors;
        add_tensor(m, name, GROUP_ENCODER, 4,
                   (int64_t[]){cfg->width, cin, cfg->kernel, cfg->kernel});
        m->t_conv_b[i] = m->t_bn[i] = -1;
        if (cfg->batchnorm) {
            m->t_bn[i] = m->ntensors;
            snprintf(name, sizeof name, "encoder.bn%d.weight", i);
            add_tensor(m, name, GROUP_ENCODER, 1, (int64_t[]){cfg->width});
            snprintf(name, sizeof name, "encoder.bn%d.bias", i);
            add_tensor(m, name, GROUP_ENCODER, 1, (int64_t[]){cfg->width});
        } else {
            m->t_conv_b[i] = m->ntensors;
            snprintf(name, sizeof name, "encoder.conv%d.bias", i);
            add_tensor(m, name, GROUP_ENCODER, 1, (int64_t[]){cfg->width});
        }
        cin = cfg->width;
        size = m->conv[i].hout;
    }
    m->flat_dim = (size_t)cfg->width * size * size;
    m->t_fc = m->ntensors;
    add_dense(m, "encoder.fc", GROUP_ENCODER, (int64_t)m->flat_dim, cfg->embed_dim);
    m->group_begin[GROUP_HEAD] = m->nparams;
    m->t_head = m->ntensors;
    add_dense(m, "head.fc0", GROUP_HEAD, cfg->embed_dim, cfg->proj_dim);
    add_dense(m, "head.fc1", GROUP_HEAD, cfg->proj_dim, cfg->proj_dim);
    m->group_begin[GROUP_CLASSIFIER] = m->nparams;
    m->t_cls = m->ntensors;
    CHECK(!(cfg->classifier_on_conv && cfg->classifier_on_head));
    add_dense(m, "classifier", GROUP_CLASSIFIER,
              cfg->classifier_on_conv ? (int64_t)m->flat_dim : cfg->classifier_on_head ? cfg->proj_dim : cfg->embed_dim,
              cfg->num_classes);
    m->group_begin[NGROUPS] = m->nparams;
    for (int i = 0; cfg->batchnorm && i < cfg->conv_layers; i++)
        for (int k = 0; k < 2; k++) {
            char name[48];
            snprintf(name, sizeof name, "encoder.bn%d.%s", i, k ? "running_var" : "running_mean");
            fill_tensor(&m->buffer[m->nbuffers++], name, GROUP_ENCODER, 1, (int64_t[]){cfg->width}, &m->nbuffer_floats);
        }

    m->params = xcalloc(m->nparams, sizeof(float), "parameters");
    m->grads = xcalloc(m->nparams, sizeof(float), "gradients");
    m->adam_m = xcalloc(m->nparams, sizeof(float), "Adam first moments");
    m->adam_v = xcalloc(m->nparams, sizeof(float), "Adam second moments");
    m->buffers = xcalloc(m->nbuffer_floats + 1, sizeof(float), "BatchNorm running statistics");

    m->max_batch = max_batch;
    size_t n = max_batch;
    m->act[0] = xcalloc(3 * n * (size_t)cfg->image_size * cfg->image_size, sizeof(float), "input");
    size_t need_ws = 0;
    for (int i = 0; i < cfg->conv_layers; i++) {
        const conv_geom *g = &m->conv[i];
        size_t len = (size_t)g->cout * n * g->hout * g->wout;
        m->act[i + 1] = xcalloc(len, sizeof(float), "conv activations");
        m->dact[i + 1] = xcalloc(len, sizeof(float), "conv activation gradients");
        if (cfg->batchnorm) {
            m->pre[i + 1] = xcalloc(len, sizeof(float), "conv outputs before BatchNorm");
            m->bn_mean[i] = xcalloc((size_t)g->cout, sizeof(float), "BatchNorm means");
            m->bn_invstd[i] = xcalloc((size_t)g->cout, sizeof(float), "BatchNorm inverse deviations");
        }
        if (conv_col_floats(g, 1) > need_ws) need_ws = conv_col_floats(g, 1);
    }
    m->ws_floats = ws_floats > need_ws ? ws_floats : need_ws;
    m->ws = xcalloc(m->ws_floats, sizeof(float), "im2col workspace");
    m->bn_sums = xcalloc(2 * (size_t)cfg->width + 1, sizeof(double), "BatchNorm sums");
    m->flat = xcalloc(n * m->flat_dim, sizeof(float), "flatten");
    m->dflat = xcalloc(n * m->flat_dim, sizeof(float), "flatten gradient");
    m->embed = xcalloc(n * (size_t)cfg->embed_dim, sizeof(float), "embedding");
    m->dembed = xcalloc(n * (size_t)cfg->embed_dim, sizeof(float), "embedding gradient");
    m->hidden = xcalloc(n * (size_t)cfg->proj_dim, sizeof(float), "head hidden");
    m->dhidden = xcalloc(n * (size_t)cfg->proj_dim, sizeof(float), "head hidden gradient");
    m->proj = xcalloc(n * (size_t)cfg->proj_dim, sizeof(float), "projection");
    m->dproj = xcalloc(n * (size_t)cfg->proj_dim, sizeof(float), "projection gradient");
    m->logits = xcalloc(n * (size_t)cfg->num_classes, sizeof(float), "logits");
    m->dlogits = xcalloc(n * (size_t)cfg->num_classes, sizeof(float), "logit gradient");
}

void model_free(model *m)
{
    float *bufs[] = {m->params, m->grads, m->adam_m, m->adam_v, m->ws, m->flat, m->dflat,
                     m->embed, m->dembed, m->hidden, m->dhidden, m->proj, m->dproj,
                     m->logits, m->dlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    for (int i = 0; i <= MODEL_MAX_CONV; i++) {
        free(m->act[i]);
        free(m->dact[i]);
        free(m->pre[i]);
        if (i < MODEL_MAX_CONV) {
            free(m->bn_mean[i]);
            free(m->bn_invstd[i]);
        }
    }
    free(m->buffers);
    free(m->bn_sums);
    memset(m, 0, sizeof *m);
}

void model_init_weights(model *m, int group, uint64_t seed)
{
    for (int t = 0; t < m->ntensors; t++) {
        const param_tensor *p = &m->tensor[t];
        if (group >= 0 && p->group != group) continue;
        float *w = m->params + p->offset;
        if (p->ndim == 1) { /* biases 0; BatchNorm weights (gamma) 1 */
            int gamma = 0;
            for (int i = 0; i < m->cfg.conv_layers; i++) gamma |= t == m->t_bn[i];
            for (size_t i = 0; i < p->size; i++) w[i] = gamma ? 1.0f : 0.0f;
            continue;
        }
        double rf = p->ndim == 4 ? (double)(p->shape[2] * p->shape[3]) : 1.0;
        double fan_in = (double)p->shape[1] * rf, fan_out = (double)p->shape[0] * rf;
        float limit = (float)sqrt(6.0 / (fan_in + fan_out));
        uint64_t key = rng_key(seed, 0x6c6f726f74ULL, (uint64_t)t, 0);
        for (size_t i = 0; i < p->size; i++) w[i] = (2.0f * rng_uniform(key, i) - 1.0f) * limit;
    }
    for (int b = 0; b < m->nbuffers; b++) { /* running mean 0, running variance 1 */
        const param_tensor *p = &m->buffer[b];
        if (group >= 0 && p->group != group) continue;
        for (size_t i = 0; i < p->size; i++) m->buffers[p->offset + i] = b % 2 ? 1.0f : 0.0f;
    }
}

const param_tensor *model_find(const model *m, const char *name)
{
    for (int t = 0; t < m->ntensors; t++)
        if (!strcmp(m->tensor[t].name, name)) return &m->tensor[t];
    return NULL;
}

void model_zero_grad(model *m, int g0, int g1)
{
    size_t a = m->group_begin[g0], b = m->group_begin[g1];
    memset(m->grads + a, 0, (b - a) * sizeof(float));
}

#define W(m, buf, t) ((buf) + (m)->tensor[t].offset)
#define OPT(m, buf, t) ((t) < 0 ? NULL : W(m, buf, t))

void encoder_forward(model *m, size_t n, int train)
{
    m->trained = train;
    CHECK(n <= m->max_batch);
    const int L = m->cfg.conv_layers;
    for (int i = 0; i < L; i++) {
        const conv_geom *g = &m->conv[i];
        const int bn = m->t_bn[i];
        conv_forward(g, m->act[i], W(m, m->params, m->t_conv_w[i]), OPT(m, m->params, m->t_conv_b[i]),
                     bn < 0 ? m->act[i + 1] : m->pre[i + 1], n, bn < 0, m->ws, m->ws_floats);
        if (bn < 0) continue;
        float *run = m->buffers + m->buffer[2 * i].offset;
        batchnorm_forward(m->pre[i + 1], m->act[i + 1], (size_t)g->cout, n * g->hout * g->wout,
                          W(m, m->params, bn), W(m, m->params, bn + 1), m->bn_mean[i], m->bn_invstd[i],
                          run, run + g->cout, train, 1, m->bn_sums, &m->reduce);
    }
    const conv_geom *g = &m->conv[L - 1];
    cnhw_to_flat(m->act[L], m->flat, (size_t)g->cout, n, (size_t)g->hout * g->wout);
    dense_forward(m->flat, W(m, m->params, m->t_fc), W(m, m->params, m->t_fc + 1), m->embed, n,
                  m->flat_dim, (size_t)m->cfg.embed_dim, 1);
}

void encoder_backward(model *m, size_t n)
{
    const int L = m->cfg.conv_layers;
    CHECK(m->trained || !m->cfg.batchnorm);
    dense_backward(m->flat, W(m, m->params, m->t_fc), m->embed, m->dembed, W(m, m->grads, m->t_fc),
                   W(m, m->grads, m->t_fc + 1), m->dflat, n, m->flat_dim, (size_t)m->cfg.embed_dim);
    const conv_geom *g = &m->conv[L - 1];
    cnhw_from_flat(m->dflat, m->dact[L], (size_t)g->cout, n, (size_t)g->hout * g->wout);
    for (int i = L - 1; i >= 0; i--) {
        const int bn = m->t_bn[i];
        g = &m->conv[i];
        if (bn >= 0) /* dact[i+1] becomes the gradient of the conv output, in place */
            batchnorm_backward(m->pre[i + 1], m->act[i + 1], m->dact[i + 1], (size_t)g->cout,
                               n * g->hout * g->wout, W(m, m->params, bn), m->bn_mean[i], m->bn_invstd[i],
                               W(m, m->grads, bn), W(m, m->grads, bn + 1), m->bn_sums, &m->reduce);
        conv_backward(g, m->act[i], W(m, m->params, m->t_conv_w[i]),
                      bn < 0 ? m->act[i + 1] : NULL, m->dact[i + 1], W(m, m->grads, m->t_conv_w[i]),
                      OPT(m, m->grads, m->t_conv_b[i]), i > 0 ? m->dact[i] : NULL, n, m->ws, m->ws_floats);
    }
}

/* The head's first layer, hidden = ReLU(head.fc0(embed)), and its backward from dhidden
 * (accumulates head.fc0's gradients; dembed overwritten unless NULL). Used by the projection
 * head and by a classifier on that layer (classifier_on_head). */
static void head0_forward(model *m, size_t n)
{
    const int t = m->t_head;
    dense_forward(m->embed, W(m, m->params, t), W(m, m->params, t + 1), m->hidden, n, (size_t)m->cfg.embed_dim,
                  (size_t)m->cfg.proj_dim, 1);
}

static void head0_backward(model *m, size_t n, float *dembed)
{
    const int t = m->t_head;
    dense_backward(m->embed, W(m, m->params, t), m->hidden, m->dhidden, W(m, m->grads, t), W(m, m->grads, t + 1),
                   dembed, n, (size_t)m->cfg.embed_dim, (size_t)m->cfg.proj_dim);
}

void head_forward(model *m, size_t n)
{
    const int t = m->t_head;
    const size_t p = (size_t)m->cfg.proj_dim;
    head0_forward(m, n);
    dense_forward(m->hidden, W(m, m->params, t + 2), W(m, m->params, t + 3), m->proj, n, p, p, 0);
}

void head_backward(model *m, size_t n)
{
    const int t = m->t_head;
    const size_t p = (size_t)m->cfg.proj_dim;
    dense_backward(m->hidden, W(m, m->params, t + 2), NULL, m->dproj, W(m, m->grads, t + 2),
                   W(m, m->grads, t + 3), m->dhidden, n, p, p);
    head0_backward(m, n, m->dembed);
}

/* The classifier's input: embed, the flattened conv features, or the head's hidden layer */
static const float *classifier_in(const model *m, size_t *dim)
{
    if (m->cfg.classifier_on_conv) return *dim = m->flat_dim, m->flat;
    if (m->cfg.classifier_on_head) return *dim = (size_t)m->cfg.proj_dim, m->hidden;
    return *dim = (size_t)m->cfg.embed_dim, m->embed;
}

void classifier_forward(model *m, size_t n)
{
    const int t = m->t_cls;
    size_t in;
    const float *x = classifier_in(m, &in);
    if (m->cfg.classifier_on_head) head0_forward(m, n);
    dense_forward(x, W(m, m->params, t), W(m, m->params, t + 1), m->logits, n, in, (size_t)m->cfg.num_classes, 0);
}

void classifier_backward(model *m, size_t n, int need_dembed)
{
    const int t = m->t_cls, on_head = m->cfg.classifier_on_head;
    size_t in;
    const float *x = classifier_in(m, &in);
    CHECK(!(need_dembed && m->cfg.classifier_on_conv));
    float *dembed = need_dembed ? m->dembed : NULL;
    dense_backward(x, W(m, m->params, t), NULL, m->dlogits, W(m, m->grads, t), W(m, m->grads, t + 1),
                   on_head ? m->dhidden : dembed, n, in, (size_t)m->cfg.num_classes);
    if (on_head) head0_backward(m, n, dembed);
}

double model_forward_gflop(const model *m)
{
    double f = 0.0;
    for (int i = 0; i < m->cfg.conv_layers; i++) {
        const conv_geom *g = &m->conv[i];
        f += 2.0 * g->cout * g->cin * g->k * g->k * g->hout * g->wout;
    }
    f += 2.0 * (double)m->flat_dim * m->cfg.embed_dim;
    f += 2.0 * (double)m->cfg.embed_dim * m->cfg.proj_dim + 2.0 * m->cfg.proj_dim * m->cfg.proj_dim;
    return f * 1e-9;
}
