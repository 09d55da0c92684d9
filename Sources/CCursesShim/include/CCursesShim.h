// C functions for ncurses macros and globals (stdscr, COLOR_PAIR, getmaxyx, KEY_F, attributes,
// ...), prefixed cg_curses_. Swift calls only these, and only from the terminal driver.
#pragma once
#include <stdint.h>
#include <wchar.h>

/// ncurses' version string (e.g. "ncurses 6.4.20221231").
const char *cg_curses_version(void);

/// Sets the locale from the environment, falling back to C.UTF-8 when that is not UTF-8.
/// Returns 1 when the resulting character set is UTF-8.
int cg_curses_setlocale_utf8(void);

/// Whether the terminal named by TERM can be drawn on, before anything is sent to it: 0 yes,
/// 1 TERM is not in the terminfo database, 2 no terminfo database, 3 the terminal cannot move
/// the cursor (TERM=dumb). initscr would exit the process on 1 and 2.
int cg_curses_check_terminal(void);
/// initscr plus the studio's modes: raw keys (Ctrl-C arrives as a key), no echo, keypad
/// decoding, a short Esc delay, colours with the terminal's defaults, hidden cursor.
/// Returns 0 on success.
int cg_curses_start(int escdelay_ms);
/// endwin.
void cg_curses_stop(void);

/// The terminal size in cells (getmaxyx on stdscr).
void cg_curses_size(int *rows, int *cols);
/// COLORS and COLOR_PAIRS.
int cg_curses_colors(void);
int cg_curses_color_pairs(void);
/// The terminfo boolean capability `name` (1, 0, or -1 when not a boolean capability).
int cg_curses_flag(const char *name);

/// Attribute bits the driver passes to cg_curses_put.
enum { CG_ATTR_BOLD = 1, CG_ATTR_DIM = 2, CG_ATTR_UNDERLINE = 4, CG_ATTR_REVERSE = 8 };

/// Defines colour pair `pair` (foreground, background; -1 = terminal default). 0 on success.
int cg_curses_init_pair(int pair, int fg, int bg);
/// Puts one character cell (a base character plus combining characters, `count` wide chars)
/// at (row, col) in stdscr with attributes and colour pair.
int cg_curses_put(int row, int col, const wchar_t *chars, int count, int attrs, int pair);
/// Moves the cursor and shows (1) or hides (0) it.
void cg_curses_cursor(int row, int col, int visible);
/// Tells ncurses rows [row, row+count) on screen are garbage, so the next refresh rewrites them.
void cg_curses_redraw_lines(int row, int count);
/// Makes the next refresh clear the screen and repaint everything.
void cg_curses_clear_all(void);
/// wnoutrefresh(stdscr) + doupdate().
void cg_curses_refresh(void);

/// Key codes cg_curses_read reports for non-character keys.
enum {
  CG_KEY_NONE = 0, CG_KEY_UP, CG_KEY_DOWN, CG_KEY_LEFT, CG_KEY_RIGHT, CG_KEY_HOME, CG_KEY_END,
  CG_KEY_PAGE_UP, CG_KEY_PAGE_DOWN, CG_KEY_BACKSPACE, CG_KEY_DELETE, CG_KEY_INSERT, CG_KEY_ENTER,
  CG_KEY_BACKTAB, CG_KEY_RESIZE, CG_KEY_F1 = 100 /* F1..F12 = 100..111 */, CG_KEY_UNKNOWN = 999
};
/// Waits up to `timeout_ms` for input. Returns 0 when none, 1 for a character (in *ch), 2 for
/// a special key (a CG_KEY_* code in *ch).
int cg_curses_read(int timeout_ms, uint32_t *ch);

/// The terminal's size from TIOCGWINSZ on `fd`: cells and, where the terminal reports them
/// (xterm does), pixels. Returns 0 on success; pixel sizes are 0 when unknown.
int cg_curses_window_size(int fd, int *cols, int *rows, int *xpixels, int *ypixels);
