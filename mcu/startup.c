// Reset and fault handlers, and the few C runtime pieces the library needs. The whole image is
// linked to RAM-like regions and loaded as is (no .data copy): the host writes it into memory.
#include <stdint.h>
#include <stddef.h>
#include "harness.h"

extern uint32_t __bss_start__, __bss_end__, __stack_top__;
extern void (*__preinit_array_start[])(void), (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
int main(void);

#define MMIO32(a) (*(volatile uint32_t*)(a))

void __attribute__((noreturn)) mcu_halt(uint32_t code) {
  MMIO32(MCU_MMIO_EXIT) = code;
  for (;;) {
  }
}

void Reset_Handler(void) {
  // Full access to CP10/CP11: the library is built for the FPU (fpv5-d16, hard float).
  MMIO32(0xE000ED88) |= (0xFu << 20);
  __asm volatile("dsb\n isb");
  for (uint32_t* p = &__bss_start__; p < &__bss_end__; p++) *p = 0;
  for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; f++) (*f)();
  for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
  mcu_halt((uint32_t)main());
}

void Fault_Handler(void) { mcu_halt(0xFA000000u); }
void abort(void) { mcu_halt(0xAB000000u); }

__attribute__((section(".vectors"), used)) void* const vectors[16] = {
    &__stack_top__, (void*)Reset_Handler, (void*)Fault_Handler, (void*)Fault_Handler,
    (void*)Fault_Handler, (void*)Fault_Handler, (void*)Fault_Handler, 0, 0, 0, 0,
    (void*)Fault_Handler, (void*)Fault_Handler, 0, (void*)Fault_Handler, (void*)Fault_Handler,
};

// C++ runtime: no heap, no exceptions, nothing is ever deleted.
void* __dso_handle = 0;
int __cxa_atexit(void (*f)(void*), void* p, void* d) { (void)f; (void)p; (void)d; return 0; }
void __cxa_pure_virtual(void) { mcu_halt(0xCC000000u); }
static int errno_value;
int* __errno(void) { return &errno_value; }

// newlib syscalls, reached only through stdio/malloc code the library links but never calls on
// these paths: no heap, stdout goes to the console.
void* _sbrk(ptrdiff_t n) { (void)n; errno_value = 12; return (void*)-1; }
int _write(int fd, const char* p, int n) {
  (void)fd;
  for (int i = 0; i < n; i++) *(volatile uint8_t*)MCU_MMIO_CONSOLE = (uint8_t)p[i];
  return n;
}
int _read(int fd, char* p, int n) { (void)fd; (void)p; (void)n; return 0; }
int _close(int fd) { (void)fd; return -1; }
int _lseek(int fd, int o, int w) { (void)fd; (void)o; (void)w; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
struct stat;
int _fstat(int fd, struct stat* s) { (void)fd; (void)s; return -1; }
