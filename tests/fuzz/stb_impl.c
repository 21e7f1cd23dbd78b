/* stb_impl.c: the stb_image and stb_image_resize implementations, compiled into the fuzz
 * harnesses with the same instrumentation (coverage, ASan, UBSan) instead of linking the
 * system's prebuilt -lstb, so that libFuzzer sees into the decoders data.c calls. Same
 * headers (Debian libstb-dev, /usr/include/stb) as build/simclr uses. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
