/* augment.h: the SimCLR views, after the keras.io example "Semi-supervised image
 * classification using contrastive pretraining with SimCLR" (A. Beres): random horizontal
 * flip, random translation by up to zoom/2 and random zoom-in (crop) of each side by a
 * factor in [1 - zoom, 1] with zoom = 1 - sqrt(min_area), bilinear sampling with reflected
 * borders, then a random colour affine map (brightness b in [1 - brightness, 1 + brightness]
 * for all channels, plus a 3x3 jitter matrix with entries in [-jitter, jitter]) and a clip
 * to [0, 1]. Optionally (grayscale > 0; not in the keras example) SimCLR's random
 * grayscale (Chen et al. 2020, appendix A: RandomGrayscale(p=0.2)): with probability
 * `grayscale` every channel becomes the luma 0.2989 R + 0.587 G + 0.114 B of the clipped
 * colours (torchvision rgb_to_grayscale weights). Optionally (blur > 0) SimCLR's Gaussian
 * blur (appendix A: kernel 10 % of the image side, sigma uniform in [0.1, 2.0], applied with
 * probability `blur`; 0.5 on ImageNet) on the final view, channel by channel.
 *
 * Randomness is counter-based: every draw is rng_uniform(key, i) with key =
 * augment_key(seed, epoch, image index, view), so a view does not depend on which rank
 * makes it or on anything made before it. */
#ifndef SIMCLR_AUGMENT_H
#define SIMCLR_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float min_area;   /* smallest crop area as a fraction of the image, in (0, 1] */
    float brightness; /* brightness scale range, >= 0 */
    float jitter;     /* colour jitter matrix range, >= 0 */
    int flip;         /* 1: random horizontal flip */
    float grayscale;  /* probability of converting the view to grey (after the colour map), in [0, 1] */
    float blur;       /* probability of a Gaussian blur of the finished view, in [0, 1] */
} aug_cfg;

#define AUG_MAX_SIDE 1024 /* largest image side the blur handles (its line buffer) */

/* Odd Gaussian kernel size for an image side: 10 % of it (torchvision's int(0.1 * side)),
 * made odd by adding 1 to an even size, at least 3 and at most 2 * side - 1. */
int blur_kernel_size(int side);

/* In place: plane p (h, w) row-major float32 = its Gaussian blur with a k x k kernel (k odd,
 * (k - 1) / 2 < h and w), standard deviation sigma > 0 pixels, reflected borders (PyTorch's
 * "reflect" padding: d c b | a b c d | c b a). Separable: a horizontal then a vertical pass
 * with the normalised 1-D kernel exp(-x^2 / (2 sigma^2)), x = -(k-1)/2 .. (k-1)/2, as
 * torchvision.transforms.functional.gaussian_blur. tmp: max(h, w) + k floats. */
void gaussian_blur_plane(float *p, int h, int w, int k, float sigma, float *tmp);

/* Key of one view: image_index is the image's index in its dataset (not its position in a
 * batch), view is 0 or 1 (0 for classification). */
uint64_t augment_key(uint64_t seed, uint64_t epoch, uint64_t image_index, uint64_t view);

/* Makes one augmented view of img, a (3, h, w) row-major uint8 image (upright, RGB planes),
 * as float32 in [0, 1] with the same size. Channel c of the output is written to
 * dst + c * cstride (h * w floats each), so a view can land directly in a CNHW batch
 * (dst = x + b*h*w, cstride = n*h*w). Overwrites dst. cfg == NULL means no augmentation
 * (plain scaling by 1/255, used for evaluation). */
void augment_view(const uint8_t *img, int h, int w, const aug_cfg *cfg, uint64_t key, float *dst,
                  size_t cstride);

#endif
