/*
 * banned.h - library calls topicfs does not use (git's banned.h).
 *
 * Each call below becomes a compile error naming it:
 *
 *   error: 'sorry_strcpy_is_a_banned_function' undeclared
 *
 * Include it as the LAST #include of every .c file under src/, after all
 * system headers (which may use these names themselves); contrib/lint.sh
 * checks that (make lint, part of make test).  Why each is banned, and
 * what to use instead:
 *
 * Unbounded or silently truncating copies: strcpy, strcat, sprintf,
 * vsprintf, gets write past their buffer; strncpy leaves it unterminated
 * and strncat's bound is not the buffer's size.  Use snprintf,
 * vsnprintf, memcpy with a known length, or struct tfs_buf
 * (tfs_buf_add, tfs_buf_addf, tfs_asprintf).
 *
 * Hidden static state, wrong in a multi-threaded daemon:
 *   strtok            strtok_r, or strsep
 *   gmtime, localtime gmtime_r, localtime_r
 *   ctime, asctime    strftime on a struct tm from gmtime_r/localtime_r
 *   (ctime_r and asctime_r too: their buffer has no size.)
 *   rand, srand       a generator whose state the caller owns
 *   getpwnam, getpwuid, getgrnam, getgrgid   the _r versions
 *   gethostbyname, gethostbyaddr             getaddrinfo, getnameinfo
 *   inet_ntoa         inet_ntop
 *   strsignal         sigabbrev_np, or the number
 *   tmpnam, tempnam, mktemp   racy names: mkstemp, mkdtemp, O_TMPFILE
 */
#ifndef TFS_BANNED_H
#define TFS_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(...) BANNED(strcpy)
#undef strcat
#define strcat(...) BANNED(strcat)
#undef strncpy
#define strncpy(...) BANNED(strncpy)
#undef strncat
#define strncat(...) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef gets
#define gets(...) BANNED(gets)

#undef strtok
#define strtok(...) BANNED(strtok)
#undef gmtime
#define gmtime(...) BANNED(gmtime)
#undef localtime
#define localtime(...) BANNED(localtime)
#undef ctime
#define ctime(...) BANNED(ctime)
#undef ctime_r
#define ctime_r(...) BANNED(ctime_r)
#undef asctime
#define asctime(...) BANNED(asctime)
#undef asctime_r
#define asctime_r(...) BANNED(asctime_r)
#undef rand
#define rand(...) BANNED(rand)
#undef srand
#define srand(...) BANNED(srand)
#undef getpwnam
#define getpwnam(...) BANNED(getpwnam)
#undef getpwuid
#define getpwuid(...) BANNED(getpwuid)
#undef getgrnam
#define getgrnam(...) BANNED(getgrnam)
#undef getgrgid
#define getgrgid(...) BANNED(getgrgid)
#undef gethostbyname
#define gethostbyname(...) BANNED(gethostbyname)
#undef gethostbyaddr
#define gethostbyaddr(...) BANNED(gethostbyaddr)
#undef inet_ntoa
#define inet_ntoa(...) BANNED(inet_ntoa)
#undef strsignal
#define strsignal(...) BANNED(strsignal)
#undef tmpnam
#define tmpnam(...) BANNED(tmpnam)
#undef tempnam
#define tempnam(...) BANNED(tempnam)
#undef mktemp
#define mktemp(...) BANNED(mktemp)

#endif
