/* check_comment_paths ROOT DIR...: every repository path a C comment names
 * exists, so a comment never sends a reader to something that is not there.
 *
 * Scans the .c and .h files under each DIR (relative to ROOT). In their
 * comments (string and character literals are skipped), a word is taken for
 * a repository path when it starts with one of the repository's top-level
 * folders followed by a slash (harness/src/probe.c, tests/win/), and it must
 * exist under ROOT; a pattern (corpus/<target>/, probe_*.c) must exist up to
 * its first wildcard. A bare Markdown or C file name (README.md, spawn.c)
 * must exist somewhere under ROOT. System headers (sys/wait.h, windows.h)
 * are not repository paths and are not checked. Prints one line per dangling
 * name and exits 1 if there was any, 2 on bad usage. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const roots[] = {"harness", "probes",  "src", "tests", "cmake",  "scripts",
                                    "bench",   "results", "docs", "design", ".ci",   ".github"};

static const char *g_root;
static int g_bad;

static bool exists(const char *rel) {
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", g_root, rel);
  return stat(path, &st) == 0;
}

/* True when a file named `name` is anywhere under dir (build trees and
 * virtual environments aside). */
static bool found_under(const char *dir, const char *name) {
  DIR *d = opendir(dir);
  if (!d) return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.' || strcmp(e->d_name, ".venv") == 0)) continue;
    if (strncmp(e->d_name, "build", 5) == 0 || strcmp(e->d_name, ".git") == 0) continue;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%.3000s/%s", dir, e->d_name);
    if (strcmp(e->d_name, name) == 0) found = true;
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) found = found_under(path, name);
  }
  closedir(d);
  return found;
}

static bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_./<>*-", c);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

static void check_word(const char *file, int line, char *w) {
  size_t n = strlen(w);
  while (n > 0 && strchr(".-", w[n - 1])) w[--n] = '\0'; /* the sentence's full stop, not the path's */
  while (*w == '.' && w[1] != 'c' && w[1] != 'g') w++;
  char *slash = strchr(w, '/');
  if (slash) {
    bool repo = false;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
      if ((size_t)(slash - w) == strlen(roots[i]) && strncmp(w, roots[i], strlen(roots[i])) == 0) repo = true;
    if (!repo) return;
    char *wild = strpbrk(w, "<*");
    if (wild) {
      *wild = '\0';
      char *last = strrchr(w, '/');
      if (last) last[1] = '\0';
    }
    if (!exists(w)) {
      printf("%s:%d: names %s, which does not exist\n", file, line, w);
      g_bad++;
    }
  } else if ((ends_with(w, ".md") || ends_with(w, ".c")) && !strpbrk(w, "<*")) {
    if (!found_under(g_root, w)) {
      printf("%s:%d: names %s, which is no file of the repository\n", file, line, w);
      g_bad++;
    }
  }
}

/* Walks one source file: code, strings, characters and the two comment forms. */
static void scan_file(const char *rel) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", g_root, rel);
  FILE *f = fopen(path, "r");
  if (!f) {
    printf("%s: cannot open\n", rel);
    g_bad++;
    return;
  }
  enum { CODE, STR, CHR, LINE, BLOCK } st = CODE;
  int c, prev = 0, line = 1;
  char word[1024];
  size_t wn = 0;
  while ((c = fgetc(f)) != EOF) {
    bool in_comment = st == LINE || st == BLOCK;
    if (in_comment && is_word_char((char)c) && wn + 1 < sizeof word) {
      word[wn++] = (char)c;
    } else if (wn) {
      word[wn] = '\0';
      check_word(rel, line, word);
      wn = 0;
    }
    switch (st) {
      case CODE:
        if (c == '"') st = STR;
        else if (c == '\'') st = CHR;
        else if (prev == '/' && c == '*') st = BLOCK, c = 0;
        else if (prev == '/' && c == '/') st = LINE;
        break;
      case STR:
      case CHR:
        if (c == '\\') {
          c = fgetc(f);
          if (c == '\n') line++;
          c = 0;
        } else if ((st == STR && c == '"') || (st == CHR && c == '\'')) st = CODE;
        break;
      case LINE:
        if (c == '\n') st = CODE;
        break;
      case BLOCK:
        if (prev == '*' && c == '/') st = CODE, c = 0;
        break;
    }
    if (c == '\n') line++;
    prev = c;
  }
  fclose(f);
}

static void scan_dir(const char *rel) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", g_root, rel);
  DIR *d = opendir(path);
  if (!d) {
    printf("%s: cannot open the folder\n", rel);
    g_bad++;
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char sub[2048];
    struct stat st;
    snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
    snprintf(path, sizeof path, "%s/%.2000s", g_root, sub);
    if (stat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) scan_dir(sub);
    else if (ends_with(e->d_name, ".c") || ends_with(e->d_name, ".h")) scan_file(sub);
  }
  closedir(d);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: check_comment_paths ROOT DIR...\n");
    return 2;
  }
  g_root = argv[1];
  for (int i = 2; i < argc; i++) scan_dir(argv[i]);
  if (g_bad) printf("%d dangling name(s) in comments\n", g_bad);
  return g_bad ? 1 : 0;
}
