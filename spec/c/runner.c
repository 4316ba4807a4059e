/* runner.c: runs every test of test_list.h in a child process; `rd_core_tests
 * NAME` runs one in-process (for gdb). Prints "N passed, N failed". */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* one runner, several test programs: each names its list */
#ifndef RD_TEST_LIST
#define RD_TEST_LIST "test_list.h"
#endif

#define T(name) void test_##name(void);
#include RD_TEST_LIST
#undef T

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
#define T(name) {#name, test_##name},
#include RD_TEST_LIST
#undef T
};

int main(int argc, char **argv)
{
    size_t n = sizeof tests / sizeof tests[0];
    if (argc > 1) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(argv[1], tests[i].name) == 0) {
                tests[i].fn();
                return 0;
            }
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20); /* a hung test fails instead of hanging the suite */
            tests[i].fn();
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
        if (ok)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
