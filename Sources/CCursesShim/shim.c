#include "CCursesShim.h"
#include "../CNcursesw/shim.h"

const char *cg_curses_version(void) { return curses_version(); }
