/*
 * syscall(3) for the executable, so that libraft's io_destroy calls reach
 * rq_aio (see rq_aio.h) instead of blocking the event loop. Every other
 * system call is made exactly as the C library would: the number in %rdi,
 * up to six arguments, -1 and errno on failure. rq_aio_raw_syscall is the
 * same entry without the io_destroy check, for rq_aio itself.
 */
#if defined(__x86_64__) && defined(__linux__)

#define NR_IO_DESTROY 207

	.text
	.globl	syscall
	.type	syscall, @function
	.globl	rq_aio_raw_syscall
	.hidden	rq_aio_raw_syscall
	.type	rq_aio_raw_syscall, @function
syscall:
#ifdef __CET__
	endbr64
#endif
	cmpq	$NR_IO_DESTROY, %rdi
	jne	rq_aio_raw_syscall
	/* rq_aio_defer_destroy(number, ctx): the arguments are in place. */
	jmp	rq_aio_defer_destroy
	.size	syscall, .-syscall

rq_aio_raw_syscall:
#ifdef __CET__
	endbr64
#endif
	movq	%rdi, %rax
	movq	%rsi, %rdi
	movq	%rdx, %rsi
	movq	%rcx, %rdx
	movq	%r8, %r10
	movq	%r9, %r8
	movq	8(%rsp), %r9
	syscall
	cmpq	$-4095, %rax
	jae	1f
	ret
1:
	/* Failure: -errno in %rax. Store errno and answer -1. One push keeps
	 * the stack 16-byte aligned for the call. */
	negq	%rax
	pushq	%rax
	call	__errno_location@PLT
	popq	%rcx
	movl	%ecx, (%rax)
	movq	$-1, %rax
	ret
	.size	rq_aio_raw_syscall, .-rq_aio_raw_syscall

#endif

	.section .note.GNU-stack,"",@progbits
