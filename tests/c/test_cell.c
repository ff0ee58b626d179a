#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sigprobe/cell.h"
#include "sigprobe/outcome.h"

Test(cell, full_id_parses) {
  sp_cell c;
  sp_error err;
  char id[128];
  snprintf(id, sizeof id, "%s/no-tty/sigaction/killpg", sp_platform_name());
  cr_assert_eq(sp_cell_parse(id, &c, &err), 0, "%s", err.msg);
  cr_assert_eq(c.host, SP_HOST_NO_TTY);
  cr_assert_eq(c.strategy, SP_STRATEGY_SIGACTION);
  cr_assert_eq(c.delivery, SP_DELIVERY_KILLPG);
  char back[128];
  cr_assert_str_eq(sp_cell_format(&c, back, sizeof back), id);
}

Test(cell, id_without_platform_parses) {
  sp_cell c;
  cr_assert_eq(sp_cell_parse("tty/all/tty-intr", &c, NULL), 0);
  cr_assert_eq(c.strategy, SP_STRATEGY_ALL);
}

Test(cell, unknown_host_names_it_and_lists_the_valid_ones) {
  sp_cell c;
  sp_error err;
  cr_assert_eq(sp_cell_parse("tyy/none/kill", &c, &err), SP_EINVAL);
  cr_assert(strstr(err.msg, "unknown host 'tyy'"), "%s", err.msg);
  cr_assert(strstr(err.msg, "tty, no-tty, background"), "%s", err.msg);
}

Test(cell, unknown_strategy_and_delivery_are_named) {
  sp_cell c;
  sp_error err;
  cr_assert_eq(sp_cell_parse("tty/sigwait/kill", &c, &err), SP_EINVAL);
  cr_assert(strstr(err.msg, "unknown strategy 'sigwait'"), "%s", err.msg);
  cr_assert_eq(sp_cell_parse("tty/none/kil", &c, &err), SP_EINVAL);
  cr_assert(strstr(err.msg, "unknown delivery 'kil'"), "%s", err.msg);
}

Test(cell, other_platform_is_refused) {
  sp_cell c;
  sp_error err;
  cr_assert_eq(sp_cell_parse("plan9/tty/none/kill", &c, &err), SP_EINVAL);
  cr_assert(strstr(err.msg, "not for this platform"), "%s", err.msg);
}

Test(cell, malformed_ids_are_refused) {
  sp_cell c;
  cr_assert_eq(sp_cell_parse("tty/none", &c, NULL), SP_EINVAL);
  cr_assert_eq(sp_cell_parse("a/b/c/d/e", &c, NULL), SP_EINVAL);
  cr_assert_eq(sp_cell_parse("", &c, NULL), SP_EINVAL);
}

Test(cell, terminal_character_needs_a_terminal) {
  sp_cell no_tty = {SP_HOST_NO_TTY, SP_STRATEGY_NONE, SP_DELIVERY_TTY_INTR};
  sp_cell tty = {SP_HOST_TTY, SP_STRATEGY_NONE, SP_DELIVERY_TTY_INTR};
  cr_assert_not_null(sp_cell_unsupported_reason(&no_tty));
  cr_assert_null(sp_cell_unsupported_reason(&tty));
}

Test(labels, a_fifth_part_is_refused_not_dropped) {
  sp_labels l;
  sp_error err;
  cr_assert_eq(sp_labels_parse(&l, "linux/tty/none/kill/extra", &err), SP_EINVAL);
  cr_assert(strstr(err.msg, "expected platform/host/strategy/delivery"), "%s", err.msg);
  cr_assert_eq(sp_labels_parse(&l, "linux/tty/none/kill", &err), 0, "%s", err.msg);
  cr_assert_str_eq(l.delivery, "kill");
}
