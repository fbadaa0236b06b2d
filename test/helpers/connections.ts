/** Connection bodies for the real servers on this machine (README, "Development"). */

/**
 * An RDS connection to the local PostgreSQL (127.0.0.1:5432, user postgres, database test);
 * `config` overrides or adds fields.
 */
export function localPostgresConnection(name: string, config: Record<string, unknown> = {}) {
  return {
    name,
    type: 'RDS',
    config: {
      ip: '127.0.0.1',
      port: '5432',
      userName: 'postgres',
      database: 'test',
      driverName: 'org.postgresql.Driver',
      ...config,
    },
  };
}

/** An RDS connection to the local MariaDB (127.0.0.1:3306, user root); `config` overrides or adds fields. */
export function localMariaDbConnection(name: string, config: Record<string, unknown> = {}) {
  return {
    name,
    type: 'RDS',
    config: {
      ip: '127.0.0.1',
      port: '3306',
      userName: 'root',
      database: 'test',
      driverName: 'com.mysql.jdbc.Driver',
      ...config,
    },
  };
}
