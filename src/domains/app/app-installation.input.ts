import { Length, Matches, MaxLength } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';

@InputType({ description: 'The app to install' })
export class InstallAppInput {
  @Field({ description: 'Android package name, e.g. com.example.app' })
  @Length(1, 255)
  @Matches(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$/, { message: 'packageName must look like com.example.app' })
  packageName!: string;
  @Field(() => ID, { nullable: true, description: "The platform's app id, when it has one" }) @Length(1, 200) appId?: string | null;
  @Field(() => String, { nullable: true }) @MaxLength(100) versionName?: string | null;
}
