// Wide-character ncurses (Debian: libncurses-dev, pkg-config name "ncursesw").
#pragma once
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include <locale.h>
#include <ncursesw/curses.h>
