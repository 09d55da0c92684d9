// C functions for ncurses macros and globals (stdscr, COLOR_PAIR, getmaxyx, ...), prefixed cg_curses_.
#pragma once
#include <stdint.h>

/// ncurses' version string (e.g. "ncurses 6.4.20221231").
const char *cg_curses_version(void);
