/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgrd's log: one line per event on stderr, with the time (UTC) and the
 * daemon's name, whole even when threads log at once.  The servers and
 * volmgrd log through it; it calls nothing of theirs. */
#pragma once

/* Log one line.  Every control character and invalid byte of the text is
 * escaped, so that a caller's string can neither end the line nor forge
 * another. */
void vm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* vm_log("%s", line), in the shape of the manager's log callback
 * (struct vm_manager_config.log); userdata is not used. */
void vm_log_line(void *userdata, const char *line);
