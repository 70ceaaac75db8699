// HiveServer2 query guard: a Spark SQL extension (spark.sql.extensions=ecommerce.guard.QueryGuard) loaded by
// the Spark Thrift Server only. HiveServer2 is a query service, not a shell: its check rule refuses, after
// analysis and before anything runs, a statement whose plan (nodes, their expressions, subqueries and the
// queries inside commands) holds any of these, which run Java or a shell command, ship code or load local files:
//   reflect / java_method / try_reflect      (CallMethodViaReflection, TryReflect)
//   SELECT TRANSFORM ... USING 'cmd'         (ScriptTransformation)
//   ADD JAR / ADD FILE / ADD ARCHIVE         (AddJarsCommand, AddFilesCommand, AddArchivesCommand)
//   CREATE [TEMPORARY] FUNCTION              (CreateFunction*, CreateUserDefinedFunction*)
//   LOAD DATA [LOCAL] INPATH                 (LoadData, LoadDataCommand)
//   SET spark.sql.runSQLOnFiles=...          (SQL on files stays off: SELECT * FROM text.`file:///...`)
// Built by pipeline/runtime/query_guard.py with javac against the pyspark jars.
package ecommerce.guard;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Locale;
import java.util.Set;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.PlanExpression;
import org.apache.spark.sql.catalyst.expressions.TryReflect;
import org.apache.spark.sql.catalyst.plans.QueryPlan;
import org.apache.spark.sql.catalyst.plans.logical.AnalysisOnlyCommand;
import org.apache.spark.sql.catalyst.plans.logical.CreateFunction;
import org.apache.spark.sql.catalyst.plans.logical.CreateUserDefinedFunction;
import org.apache.spark.sql.catalyst.plans.logical.LoadData;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.ScriptTransformation;
import org.apache.spark.sql.execution.command.AddArchivesCommand;
import org.apache.spark.sql.execution.command.AddFilesCommand;
import org.apache.spark.sql.execution.command.AddJarsCommand;
import org.apache.spark.sql.execution.command.CreateFunctionCommand;
import org.apache.spark.sql.execution.command.CreateUserDefinedFunctionCommand;
import org.apache.spark.sql.execution.command.LoadDataCommand;
import org.apache.spark.sql.execution.command.SetCommand;
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
