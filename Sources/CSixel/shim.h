// libsixel (Debian: libsixel-dev, pkg-config name "libsixel").
#pragma once
#include <sixel.h>
