// NetPool: the connection pool and manager land here (issue 6).
