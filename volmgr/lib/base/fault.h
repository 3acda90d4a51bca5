/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fault injection for the crash-consistency tests: VM_FAULT("name") at
 * each step of a multi-step operation ends the process on the spot
 * (_exit, no cleanup: as a crash would) when $VOLMGR_FAULT names that
 * point.  Compiled in only with -Dfault_injection (not in release
 * builds); otherwise it is nothing. */
#pragma once

#ifdef VM_FAULT_INJECTION
void vm_fault_point(const char *name);
#define VM_FAULT(name) vm_fault_point(name)
/* $VOLMGR_FAULT_PAUSE = "name:DIR": at that point, once, make
 * DIR/name.paused and wait (at most 5 min) until DIR/name.resume exists,
 * so a test can act while, say, a copy is under way.  "+name:DIR": the
 * same, but only once DIR/name.arm exists (earlier passes go on).
 * "*name:DIR": every pass waits while DIR/name.hold exists (at most 5
 * min), so a test can hold several requests at one point. */
void vm_fault_pause(const char *name);
#define VM_FAULT_PAUSE(name) vm_fault_pause(name)
#else
#define VM_FAULT(name) ((void)0)
#define VM_FAULT_PAUSE(name) ((void)0)
#endif
