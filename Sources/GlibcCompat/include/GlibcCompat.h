#ifndef GLIBC_COMPAT_H
#define GLIBC_COMPAT_H
// The wrappers of GlibcCompat.c; nothing to call from Swift.
double __wrap_hypot(double x, double y);
float __wrap_hypotf(float x, float y);
#endif
