/*
 * The stand-in exchange of the audit tool's tests: see audit_standin.h.
 */
#include "tests/support/audit_standin.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQUEST_MAX 4096 /* bytes of a request's head */
#define POLL_MS     50   /* how often the thread looks at `stop` */

/* Reads one request's head from fd and returns its target (in buf), or NULL. */
static char *read_target(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return NULL;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    char *target = strchr(buf, ' ');
    if (target == NULL)
        return NULL;
    target++;
    char *end = strchr(target, ' ');
    if (end != NULL)
        *end = '\0';
    return target;
}

static void write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

static void serve_one(struct audit_standin *s, int fd)
{
    char buf[REQUEST_MAX];
    char *target = read_target(fd, buf, sizeof buf);
    if (target == NULL)
        return;
    size_t used = strlen(s->targets);
    snprintf(s->targets + used, sizeof s->targets - used, "%s\n", target);
    int status;
    char *body = s->answer(s->ctx, target, &status);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));
    write_all(fd, head, (size_t)n);
    write_all(fd, body, strlen(body));
    free(body);
}

static void *serve(void *arg)
{
    struct audit_standin *s = arg;
    while (!s->stop) {
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        if (poll(&p, 1, POLL_MS) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(s, c);
        close(c);
    }
    return NULL;
}

void audit_standin_start(struct audit_standin *s, audit_standin_answer_fn answer, void *ctx)
{
    memset(s, 0, sizeof *s);
    s->answer = answer;
    s->ctx = ctx;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", ntohs(a.sin_port));
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

void audit_standin_stop(struct audit_standin *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
    close(s->fd);
}
