// Lambda's provided.al2023 runtime has glibc 2.34. Linked on a newer glibc, `hypot` and `hypotf`
// (used by the Swift runtime's libraries) bind to their GLIBC_2.35 versions and the binary would
// not load there. scripts/package-registrator.sh and scripts/package-extension.sh link with `--wrap=hypot --wrap=hypotf`, which sends
// every reference to these wrappers, bound to the functions' original versions (same results).
// Without those flags nothing refers to the wrappers and they are inert.
#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__))
#include "GlibcCompat.h"

#if defined(__x86_64__)
#define GLIBC_BASE "GLIBC_2.2.5"
#else
#define GLIBC_BASE "GLIBC_2.17"
#endif

__asm__(".symver glibc_compat_hypot, hypot@" GLIBC_BASE);
__asm__(".symver glibc_compat_hypotf, hypotf@" GLIBC_BASE);
double glibc_compat_hypot(double x, double y);
float glibc_compat_hypotf(float x, float y);

double __wrap_hypot(double x, double y) { return glibc_compat_hypot(x, y); }
float __wrap_hypotf(float x, float y) { return glibc_compat_hypotf(x, y); }
#endif
