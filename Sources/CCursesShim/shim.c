#include "CCursesShim.h"
#include "../CNcursesw/shim.h"
#include <langinfo.h>
#include <string.h>
#include <term.h>

const char *cg_curses_version(void) { return curses_version(); }

int cg_curses_setlocale_utf8(void) {
  setlocale(LC_ALL, "");
  const char *cs = nl_langinfo(CODESET);
  if (cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0)) return 1;
  if (setlocale(LC_CTYPE, "C.UTF-8") || setlocale(LC_CTYPE, "C.utf8") || setlocale(LC_CTYPE, "en_US.UTF-8")) {
    cs = nl_langinfo(CODESET);
    return cs && strcmp(cs, "UTF-8") == 0;
  }
  return 0;
}

int cg_curses_start(int escdelay_ms) {
  if (initscr() == NULL) return -1;
  raw();
  noecho();
  nonl();
  keypad(stdscr, TRUE);
  intrflush(stdscr, FALSE);
  set_escdelay(escdelay_ms);
  if (has_colors()) {
    start_color();
    use_default_colors();
  }
  curs_set(0);
  leaveok(stdscr, FALSE);
  return 0;
}

void cg_curses_stop(void) { endwin(); }

void cg_curses_size(int *rows, int *cols) {
  int r, c;
  getmaxyx(stdscr, r, c);
  *rows = r;
  *cols = c;
}

int cg_curses_colors(void) { return COLORS; }
int cg_curses_color_pairs(void) { return COLOR_PAIRS; }
int cg_curses_flag(const char *name) { return tigetflag(name); }

int cg_curses_init_pair(int pair, int fg, int bg) { return init_extended_pair(pair, fg, bg) == OK ? 0 : -1; }

int cg_curses_put(int row, int col, const wchar_t *chars, int count, int attrs, int pair) {
  wchar_t buf[CCHARW_MAX + 1];
  int n = count < CCHARW_MAX ? count : CCHARW_MAX;
  for (int i = 0; i < n; i++) buf[i] = chars[i];
  buf[n] = 0;
  attr_t a = A_NORMAL;
  if (attrs & CG_ATTR_BOLD) a |= A_BOLD;
  if (attrs & CG_ATTR_DIM) a |= A_DIM;
  if (attrs & CG_ATTR_UNDERLINE) a |= A_UNDERLINE;
  if (attrs & CG_ATTR_REVERSE) a |= A_REVERSE;
  cchar_t cc;
  int ext = pair;
  if (setcchar(&cc, buf, a, (short)(pair < 32767 ? pair : 0), &ext) != OK) return -1;
  return mvwadd_wch(stdscr, row, col, &cc) == OK ? 0 : -1;
}

void cg_curses_cursor(int row, int col, int visible) {
  if (visible) wmove(stdscr, row, col);
  curs_set(visible ? 1 : 0);
}

void cg_curses_redraw_lines(int row, int count) { wredrawln(stdscr, row, count); }
void cg_curses_clear_all(void) { clearok(curscr, TRUE); }
void cg_curses_refresh(void) {
  wnoutrefresh(stdscr);
  doupdate();
}

int cg_curses_read(int timeout_ms, uint32_t *ch) {
  wtimeout(stdscr, timeout_ms);
  wint_t w = 0;
  int r = wget_wch(stdscr, &w);
  if (r == ERR) return 0;
  if (r == OK) {
    *ch = (uint32_t)w;
    return 1;
  }
  int k;
  switch (w) {
  case KEY_UP: k = CG_KEY_UP; break;
  case KEY_DOWN: k = CG_KEY_DOWN; break;
  case KEY_LEFT: k = CG_KEY_LEFT; break;
  case KEY_RIGHT: k = CG_KEY_RIGHT; break;
  case KEY_HOME: k = CG_KEY_HOME; break;
  case KEY_END: k = CG_KEY_END; break;
  case KEY_PPAGE: k = CG_KEY_PAGE_UP; break;
  case KEY_NPAGE: k = CG_KEY_PAGE_DOWN; break;
  case KEY_BACKSPACE: k = CG_KEY_BACKSPACE; break;
  case KEY_DC: k = CG_KEY_DELETE; break;
  case KEY_IC: k = CG_KEY_INSERT; break;
  case KEY_ENTER: k = CG_KEY_ENTER; break;
  case KEY_BTAB: k = CG_KEY_BACKTAB; break;
  case KEY_RESIZE: k = CG_KEY_RESIZE; break;
  default:
    if (w >= KEY_F(1) && w <= KEY_F(12)) k = CG_KEY_F1 + (int)(w - KEY_F(1));
    else k = CG_KEY_UNKNOWN;
  }
  *ch = (uint32_t)k;
  return 2;
}

#include <sys/ioctl.h>
int cg_curses_window_size(int fd, int *cols, int *rows, int *xpixels, int *ypixels) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0) return -1;
  *cols = ws.ws_col;
  *rows = ws.ws_row;
  *xpixels = ws.ws_xpixel;
  *ypixels = ws.ws_ypixel;
  return 0;
}

int cg_curses_check_terminal(void) {
  int err = 0;
  if (setupterm(NULL, 1, &err) != OK) return err == 0 ? 1 : 2;
  const char *cup = tigetstr("cup");
  int addressable = cup != NULL && cup != (const char *)-1;
  del_curterm(cur_term);
  cur_term = NULL;
  return addressable ? 0 : 3;
}
