/* tbprof: a QEMU TCG plugin (plugin API 1, QEMU 7.2) that counts, per translation block, its
 * executions on vCPU 0 and on vCPU 1. Whenever the file DIR/trigger appears it removes it and
 * writes the table to DIR/hist-NNN.txt ("vaddr instructions count-vcpu0 count-vcpu1" per line).
 * Benchmarks/GuestProfile/run.sh drives it: see there. The plugin API's declarations are written
 * out here (Debian ships no qemu-plugin.h); qemu-system-x86_64 exports the functions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <stdbool.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb, int flags, void *userdata);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;
struct tbi { uint64_t vaddr; uint64_t n; volatile uint64_t cnt[2]; };
static struct tbi **all; static size_t nall, cap;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *dir = ".";
static void exec_cb(unsigned int vcpu, void *ud) { ((struct tbi *)ud)->cnt[vcpu & 1]++; }
static void trans_cb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    struct tbi *t = calloc(1, sizeof *t);
    t->vaddr = qemu_plugin_tb_vaddr(tb); t->n = qemu_plugin_tb_n_insns(tb);
    pthread_mutex_lock(&mu);
    if (!all) { cap = 1u << 23; all = calloc(cap, sizeof *all); }
    if (nall == cap) { pthread_mutex_unlock(&mu); return; }
    all[nall++] = t;
    pthread_mutex_unlock(&mu);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_cb, 0, t);
}
static void *dumper(void *arg) {
    char trig[256], out[256]; int seq = 0;
    snprintf(trig, sizeof trig, "%s/trigger", dir);
    for (;;) {
        usleep(100000);
        if (access(trig, F_OK) != 0) continue;
        unlink(trig);
        snprintf(out, sizeof out, "%s/hist-%03d.txt", dir, seq++);
        FILE *f = fopen(out, "w"); if (!f) continue;
        pthread_mutex_lock(&mu); size_t n = nall;
        for (size_t i = 0; i < n; i++) { struct tbi *t = all[i]; if (t->cnt[0] | t->cnt[1]) fprintf(f, "%lx %lu %lu %lu\n", t->vaddr, t->n, t->cnt[0], t->cnt[1]); }
        pthread_mutex_unlock(&mu);
        fclose(f);
    }
    return NULL;
}
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++) if (strncmp(argv[i], "dir=", 4) == 0) dir = strdup(argv[i] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, trans_cb);
    pthread_t t; pthread_create(&t, NULL, dumper, NULL);
    return 0;
}
