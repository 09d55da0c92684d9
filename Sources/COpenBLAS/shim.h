// OpenBLAS's CBLAS interface (Debian: libopenblas-dev, pkg-config name "openblas").
#pragma once
#include <cblas.h>
