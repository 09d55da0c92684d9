// PNG and JPEG reading and writing for the engine (libpng, libjpeg-turbo). Implemented in imageio.c.
#pragma once
#include <stdint.h>
