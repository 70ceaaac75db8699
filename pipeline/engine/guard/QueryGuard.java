// HiveServer2 query guard: a Spark SQL extension (spark.sql.extensions=ecommerce.guard.QueryGuard) loaded by
// the Spark Thrift Server only. HiveServer2 is a query service, not a shell: its check rule refuses, after
// analysis and before anything runs, a statement whose plan (nodes, their expressions, subqueries and the
// queries inside commands) holds any of these, which run Java or a shell command, ship code, or read or write
// files (or other systems) outside the tables' own storage:
//   reflect / java_method / try_reflect      (CallMethodViaReflection, TryReflect)
//   SELECT TRANSFORM ... USING 'cmd'         (ScriptTransformation)
//   ADD JAR / ADD FILE / ADD ARCHIVE         (AddJarsCommand, AddFilesCommand, AddArchivesCommand)
//   CREATE [TEMPORARY] FUNCTION              (CreateFunction*, CreateUserDefinedFunction*)
//   LOAD DATA [LOCAL] INPATH                 (LoadData, LoadDataCommand)
//   SET spark.sql.runSQLOnFiles=...          (SQL on files stays off: SELECT * FROM text.`file:///...`)
//   CREATE [GLOBAL] TEMPORARY VIEW ... USING (CreateTempViewUsing: a view over a data source, path or not)
//   INSERT OVERWRITE [LOCAL] DIRECTORY ...   (InsertIntoDir, InsertIntoDataSourceDirCommand, InsertIntoHiveDirCommand)
//   CREATE [EXTERNAL] TABLE [LIKE] ... LOCATION / OPTIONS (path ...), or USING a source that is no file format
//     (jdbc, ...)                            (CreateDataSourceTable[AsSelect]Command, CreateTableCommand,
//                                             CreateHiveTableAsSelectCommand, CreateTableLikeCommand, CreateTable,
//                                             CreateTableAsSelect, ReplaceTable[AsSelect], CreateTableLike)
//   ALTER TABLE ... [PARTITION ...] SET LOCATION        (AlterTableSetLocationCommand, SetTableLocation)
//   ALTER TABLE ... ADD PARTITION ... LOCATION          (AlterTableAddPartitionCommand, AddPartitions)
//   ALTER TABLE ... SET SERDEPROPERTIES ('path' ...)    (AlterTableSerDePropertiesCommand, SetTableSerDeProperties)
//   CREATE DATABASE ... LOCATION / ALTER DATABASE ... SET LOCATION  (CreateDatabaseCommand, CreateNamespace,
//                                             AlterDatabaseSetLocationCommand, SetNamespaceLocation)
// Tables created through HiveServer2 are managed: they live in the warehouse, where the metastore puts them.
// Built by pipeline/engine/query_guard.py with javac against the pyspark jars.
package ecommerce.guard;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.analysis.PartitionSpec;
import org.apache.spark.sql.catalyst.analysis.ResolvedPartitionSpec;
import org.apache.spark.sql.catalyst.analysis.UnresolvedPartitionSpec;
import org.apache.spark.sql.catalyst.catalog.CatalogStorageFormat;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.CatalogTableType;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.PlanExpression;
import org.apache.spark.sql.catalyst.expressions.TryReflect;
import org.apache.spark.sql.catalyst.plans.QueryPlan;
import org.apache.spark.sql.catalyst.plans.logical.AddPartitions;
import org.apache.spark.sql.catalyst.plans.logical.AnalysisOnlyCommand;
import org.apache.spark.sql.catalyst.plans.logical.CreateFunction;
import org.apache.spark.sql.catalyst.plans.logical.CreateNamespace;
import org.apache.spark.sql.catalyst.plans.logical.CreateTableAsSelect;
import org.apache.spark.sql.catalyst.plans.logical.CreateTableLike;
import org.apache.spark.sql.catalyst.plans.logical.CreateUserDefinedFunction;
import org.apache.spark.sql.catalyst.plans.logical.InsertIntoDir;
import org.apache.spark.sql.catalyst.plans.logical.LoadData;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.ReplaceTable;
import org.apache.spark.sql.catalyst.plans.logical.ReplaceTableAsSelect;
import org.apache.spark.sql.catalyst.plans.logical.ScriptTransformation;
import org.apache.spark.sql.catalyst.plans.logical.SetNamespaceLocation;
import org.apache.spark.sql.catalyst.plans.logical.SetTableLocation;
import org.apache.spark.sql.catalyst.plans.logical.SetTableSerDeProperties;
import org.apache.spark.sql.catalyst.plans.logical.TableSpecBase;
import org.apache.spark.sql.execution.command.AddArchivesCommand;
import org.apache.spark.sql.execution.command.AddFilesCommand;
import org.apache.spark.sql.execution.command.AddJarsCommand;
import org.apache.spark.sql.execution.command.AlterDatabaseSetLocationCommand;
import org.apache.spark.sql.execution.command.AlterTableAddPartitionCommand;
import org.apache.spark.sql.execution.command.AlterTableSerDePropertiesCommand;
import org.apache.spark.sql.execution.command.AlterTableSetLocationCommand;
import org.apache.spark.sql.execution.command.CreateDataSourceTableAsSelectCommand;
import org.apache.spark.sql.execution.command.CreateDataSourceTableCommand;
import org.apache.spark.sql.execution.command.CreateDatabaseCommand;
import org.apache.spark.sql.execution.command.CreateFunctionCommand;
import org.apache.spark.sql.execution.command.CreateTableCommand;
import org.apache.spark.sql.execution.command.CreateTableLikeCommand;
import org.apache.spark.sql.execution.command.CreateUserDefinedFunctionCommand;
import org.apache.spark.sql.execution.command.InsertIntoDataSourceDirCommand;
import org.apache.spark.sql.execution.command.LoadDataCommand;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.execution.datasources.CreateTempViewUsing;
import org.apache.spark.sql.hive.execution.CreateHiveTableAsSelectCommand;
import org.apache.spark.sql.hive.execution.InsertIntoHiveDirCommand;
import scala.Function1;
import scala.Option;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.BoxedUnit;

public final class QueryGuard implements Function1<SparkSessionExtensions, BoxedUnit> {

    /** Every refusal starts with this; clients and tests match on it. */
    public static final String REFUSED = "refused by the query guard: ";
    static final String VIA = " through HiveServer2";
    static final String SQL_ON_FILES = "spark.sql.runSQLOnFiles";
    /** Options and properties that point a table at files of the client's choosing (path; paths for v2 sources). */
    static final Set<String> PATH_KEYS = Set.of("path", "paths");
    /** The formats a table created through HiveServer2 may have: files in the warehouse, nothing else. */
    static final Set<String> TABLE_FORMATS = Set.of("hive", "parquet", "orc", "csv", "json", "text", "xml", "avro");

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectCheckRule(new CheckRuleBuilder());
        return BoxedUnit.UNIT;
    }

    /** One check rule per session (the Thrift server gives every connection a session of its own). */
    static final class CheckRuleBuilder implements Function1<SparkSession, Function1<LogicalPlan, BoxedUnit>> {
        @Override
        public Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
            return new Check(session);
        }
    }

    static final class Check implements Function1<LogicalPlan, BoxedUnit> {
        private final SparkSession session;

        Check(SparkSession session) {
            this.session = session;
        }

        @Override
        public BoxedUnit apply(LogicalPlan plan) {
            // a session configuration handed over at connect time (hiveconf) must not switch SQL on files on
            if (!"false".equalsIgnoreCase(session.conf().get(SQL_ON_FILES, "true").trim())) {
                throw refuse(SQL_ON_FILES + " must stay false" + VIA);
            }
            new Walk().plan(plan);
            return BoxedUnit.UNIT;
        }
    }

    /** Depth-first over plans, their expressions and the plans inside expressions and commands. */
    static final class Walk {
        private final Set<Object> seen = Collections.newSetFromMap(new IdentityHashMap<>());

        void plan(QueryPlan<?> node) {
            if (node == null || !seen.add(node)) {
                return;
            }
            node(node);
            for (Expression e : CollectionConverters.asJava(node.expressions())) {
                expression(e);
            }
            for (Object child : CollectionConverters.asJava(node.children())) {
                plan((QueryPlan<?>) child);
            }
            for (QueryPlan<?> inner : CollectionConverters.asJava(node.innerChildren())) {
                plan(inner);
            }
            if (node instanceof AnalysisOnlyCommand command) {  // its query is no child once analyzed
                for (LogicalPlan query : CollectionConverters.asJava(command.childrenToAnalyze())) {
                    plan(query);
                }
            }
        }

        void expression(Expression e) {
            if (e == null || !seen.add(e)) {
                return;
            }
            if (e instanceof CallMethodViaReflection || e instanceof TryReflect) {
                throw refuse("reflection functions (reflect, java_method, try_reflect) are not allowed" + VIA);
            }
            if (e instanceof PlanExpression<?> subquery) {
                plan((QueryPlan<?>) subquery.plan());
            }
            for (Expression child : CollectionConverters.asJava(e.children())) {
                expression(child);
            }
        }

        static void node(QueryPlan<?> node) {
            if (node instanceof ScriptTransformation) {
                throw refuse("script transformation (SELECT TRANSFORM ... USING) is not allowed" + VIA);
            }
            if (node instanceof AddJarsCommand || node instanceof AddFilesCommand
                    || node instanceof AddArchivesCommand) {
                throw refuse("ADD JAR / ADD FILE / ADD ARCHIVE is not allowed" + VIA);
            }
            if (node instanceof CreateFunctionCommand || node instanceof CreateUserDefinedFunctionCommand
                    || node instanceof CreateFunction || node instanceof CreateUserDefinedFunction) {
                throw refuse("CREATE FUNCTION is not allowed" + VIA);
            }
            if (node instanceof LoadDataCommand || node instanceof LoadData) {
                throw refuse("LOAD DATA is not allowed" + VIA);
            }
            if (node instanceof SetCommand set && setsSqlOnFiles(set)) {
                throw refuse(SQL_ON_FILES + " cannot be changed" + VIA);
            }
            if (node instanceof CreateTempViewUsing) {  // also GLOBAL, and the old CREATE TEMPORARY TABLE ... USING
                throw refuse("CREATE TEMPORARY VIEW ... USING a data source is not allowed" + VIA);
            }
            if (node instanceof InsertIntoDir || node instanceof InsertIntoDataSourceDirCommand
                    || node instanceof InsertIntoHiveDirCommand) {
                throw refuse("INSERT OVERWRITE [LOCAL] DIRECTORY is not allowed" + VIA);
            }
            // a new table: the analyzed v1 commands, and the v2 plans should one stay unconverted
            if (node instanceof CreateDataSourceTableCommand create) {
                table(create.table());
            } else if (node instanceof CreateDataSourceTableAsSelectCommand create) {
                table(create.table());
            } else if (node instanceof CreateTableCommand create) {
                table(create.table());
            } else if (node instanceof CreateHiveTableAsSelectCommand create) {
                table(create.tableDesc());
            } else if (node instanceof org.apache.spark.sql.execution.datasources.CreateTable create) {
                table(create.tableDesc());
            } else if (node instanceof CreateTableLikeCommand like) {
                storage(like.fileFormat());
                provider(like.provider());
            } else if (node instanceof org.apache.spark.sql.catalyst.plans.logical.CreateTable create) {
                tableSpec(create.tableSpec());
            } else if (node instanceof CreateTableAsSelect create) {
                tableSpec(create.tableSpec());
            } else if (node instanceof ReplaceTable replace) {
                tableSpec(replace.tableSpec());
            } else if (node instanceof ReplaceTableAsSelect replace) {
                tableSpec(replace.tableSpec());
            } else if (node instanceof CreateTableLike like) {
                location(like.location().isDefined() || hasKey(like.properties(), PATH_KEYS));
                provider(like.provider());
            }
            // an existing table moved, or given partitions or a path, elsewhere
            if (node instanceof AlterTableSetLocationCommand || node instanceof SetTableLocation) {
                throw refuse("ALTER TABLE ... SET LOCATION is not allowed" + VIA);
            }
            if (node instanceof AlterTableAddPartitionCommand add) {
                for (Tuple2<?, Option<String>> part : CollectionConverters.asJava(add.partitionSpecsAndLocs())) {
                    partitionLocation(part._2());
                }
            }
            if (node instanceof AddPartitions add) {
                for (PartitionSpec part : CollectionConverters.asJava(add.parts())) {
                    if (part instanceof UnresolvedPartitionSpec spec) {
                        partitionLocation(spec.location());
                    } else if (part instanceof ResolvedPartitionSpec spec) {
                        partitionLocation(spec.location());
                    }
                }
            }
            if ((node instanceof AlterTableSerDePropertiesCommand alter && pathIn(alter.serdeProperties()))
                    || (node instanceof SetTableSerDeProperties set && pathIn(set.serdeProperties()))) {
                throw refuse("ALTER TABLE ... SET SERDEPROPERTIES ('path' ...) is not allowed" + VIA);
            }
            // a database's location is where its managed tables go
            if ((node instanceof CreateDatabaseCommand database && database.path().isDefined())
                    || (node instanceof CreateNamespace namespace
                        && hasKey(namespace.properties(), Set.of("location")))) {
                throw refuse("CREATE DATABASE ... LOCATION is not allowed" + VIA);
            }
            if (node instanceof AlterDatabaseSetLocationCommand || node instanceof SetNamespaceLocation) {
                throw refuse("ALTER DATABASE ... SET LOCATION is not allowed" + VIA);
            }
        }

        static void table(CatalogTable table) {
            storage(table.storage());
            location(CatalogTableType.EXTERNAL().equals(table.tableType()));
            provider(table.provider());
        }

        static void storage(CatalogStorageFormat storage) {
            location(storage.locationUri().isDefined() || hasKey(storage.properties(), PATH_KEYS));
        }

        static void tableSpec(TableSpecBase spec) {
            boolean options = spec instanceof org.apache.spark.sql.catalyst.plans.logical.TableSpec resolved
                    && hasKey(resolved.options(), PATH_KEYS);
            location(spec.location().isDefined() || spec.external() || options || hasKey(spec.properties(), PATH_KEYS));
            provider(spec.provider());
        }

        static void location(boolean given) {
            if (given) {
                throw refuse("CREATE TABLE with LOCATION or a path option is not allowed" + VIA);
            }
        }

        static void partitionLocation(Option<String> location) {
            if (location.isDefined()) {
                throw refuse("ALTER TABLE ... ADD PARTITION ... LOCATION is not allowed" + VIA);
            }
        }

        /** A table stored as files in the warehouse; jdbc and other sources reach what they please. */
        static void provider(Option<String> provider) {
            if (provider.isDefined() && !TABLE_FORMATS.contains(provider.get().trim().toLowerCase(Locale.ROOT))) {
                throw refuse("CREATE TABLE ... USING " + provider.get() + " is not allowed" + VIA
                        + " (tables are files in the warehouse: " + String.join(", ", new TreeSet<>(TABLE_FORMATS))
                        + ")");
            }
        }

        static boolean pathIn(Option<scala.collection.immutable.Map<String, String>> properties) {
            return properties.isDefined() && hasKey(properties.get(), PATH_KEYS);
        }

        static boolean hasKey(scala.collection.immutable.Map<String, String> map, Set<String> keys) {
            Map<String, String> java = CollectionConverters.asJava(map);
            return java.keySet().stream().anyMatch(k -> keys.contains(k.trim().toLowerCase(Locale.ROOT)));
        }

        static boolean setsSqlOnFiles(SetCommand set) {
            Option<Tuple2<String, Option<String>>> kv = set.kv();
            return kv.isDefined() && kv.get()._2().isDefined()
                    && kv.get()._1().trim().toLowerCase(Locale.ROOT).equals(SQL_ON_FILES.toLowerCase(Locale.ROOT));
        }
    }

    /** An AnalysisException, as Spark raises for any query it will not run (checked in Java, not in Scala). */
    static RuntimeException refuse(String why) {
        return QueryGuard.<RuntimeException>sneaky(new AnalysisException(REFUSED + why, Option.empty(),
                Option.empty(), Option.empty(), Option.empty(), scala.collection.immutable.Map$.MODULE$.empty(),
                new org.apache.spark.QueryContext[0]));
    }

    @SuppressWarnings("unchecked")
    private static <E extends Throwable> E sneaky(Throwable t) throws E {
        throw (E) t;
    }
}
